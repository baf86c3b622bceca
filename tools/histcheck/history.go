package main

// Reading a recorded history: one JSON object per line, validated whole before checking.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// Never is the return time of an operation whose outcome is unknown: it may take effect at
// any moment after its call (etcd's robustness model does the same).
const Never = int64(math.MaxInt64)

// Outcome of one recorded call.
type Outcome int

const (
	Answered Outcome = iota // ok: true, the server answered
	Failed                  // ok: false, failed for sure: no effect
	Unknown                 // ok: null (return: null), may or may not have happened
)

// Record is one line of a history file, as written by the recorder.
type Record struct {
	Line      int
	Client    int
	Op        string
	Key       string
	Value     *string // put, create, cas: the value written
	Prev      *string // cas: the value the key must hold
	Lease     int64   // put, create, cas: the lease attached (0: none); grant, keepalive, revoke
	TTL       int64   // grant, keepalive: the TTL the server answered (seconds)
	Result    *string // get: the value read (nil: no key)
	Succeeded bool    // create, cas: whether the comparison held
	Call      int64
	Return    int64 // Never when unknown
	Outcome   Outcome
	Raw       string
}

type rawRecord struct {
	Client    *int    `json:"client"`
	Op        *string `json:"op"`
	Key       *string `json:"key"`
	Value     *string `json:"value"`
	Prev      *string `json:"prev"`
	Lease     *int64  `json:"lease"`
	TTL       *int64  `json:"ttl"`
	Succeeded *bool   `json:"succeeded"`
	Call      *int64  `json:"call"`
	Return    *int64  `json:"return"`
	Ok        *bool   `json:"ok"`
}

var knownFields = map[string]bool{
	"client": true, "op": true, "key": true, "value": true, "prev": true, "lease": true,
	"ttl": true, "result": true, "succeeded": true, "call": true, "return": true, "ok": true,
}

// BadInput is a history the checker refuses to judge (exit 2).
type BadInput struct {
	Line   int
	Reason string
}

func (e *BadInput) Error() string {
	if e.Line == 0 {
		return e.Reason
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

func bad(line int, format string, args ...any) *BadInput {
	return &BadInput{line, fmt.Sprintf(format, args...)}
}

// ReadHistory parses and validates a whole history.
func ReadHistory(input io.Reader) ([]Record, error) {
	scanner := bufio.NewScanner(input)
	scanner.Buffer(make([]byte, 1<<20), 1<<26)
	var records []Record
	line := 0
	for scanner.Scan() {
		line++
		text := strings.TrimSpace(scanner.Text())
		if text == "" {
			continue
		}
		record, err := parseRecord(line, text)
		if err != nil {
			return nil, err
		}
		records = append(records, record)
	}
	if err := scanner.Err(); err != nil {
		return nil, &BadInput{0, err.Error()}
	}
	if len(records) == 0 {
		return nil, &BadInput{0, "the history holds no operations"}
	}
	if err := checkLeaseKeys(records); err != nil {
		return nil, err
	}
	return records, nil
}

func parseRecord(line int, text string) (Record, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &fields); err != nil {
		return Record{}, bad(line, "not a JSON object: %v", err)
	}
	for name := range fields {
		if !knownFields[name] {
			return Record{}, bad(line, "unknown field %q", name)
		}
	}
	var raw rawRecord
	decoder := json.NewDecoder(bytes.NewReader([]byte(text)))
	if err := decoder.Decode(&raw); err != nil {
		return Record{}, bad(line, "a field has the wrong type: %v", err)
	}
	if raw.Client == nil || raw.Op == nil || raw.Call == nil {
		return Record{}, bad(line, "every line needs client, op and call")
	}
	if _, present := fields["ok"]; !present {
		return Record{}, bad(line, "every line needs ok (true, false, or null for unknown)")
	}
	if *raw.Client < 0 {
		return Record{}, bad(line, "client must be 0 or more")
	}
	record := Record{Line: line, Client: *raw.Client, Op: *raw.Op, Call: *raw.Call, Raw: text,
		Value: raw.Value, Prev: raw.Prev}
	if raw.Key != nil {
		record.Key = *raw.Key
	}
	if raw.Lease != nil {
		record.Lease = *raw.Lease
	}
	if raw.TTL != nil {
		record.TTL = *raw.TTL
	}
	switch {
	case raw.Ok == nil:
		record.Outcome = Unknown
		record.Return = Never
		if raw.Return != nil {
			return Record{}, bad(line, "an unknown outcome (ok: null) has return: null")
		}
	case raw.Return == nil:
		return Record{}, bad(line, "ok is %v but return is null", *raw.Ok)
	default:
		record.Return = *raw.Return
		if record.Return < record.Call {
			return Record{}, bad(line, "return %d is before call %d", record.Return, record.Call)
		}
		if *raw.Ok {
			record.Outcome = Answered
		} else {
			record.Outcome = Failed
		}
	}
	needsKey := map[string]bool{"put": true, "get": true, "delete": true, "create": true,
		"cas": true, "revoke": true}
	if needsKey[record.Op] && raw.Key == nil {
		return Record{}, bad(line, "%s needs key", record.Op)
	}
	switch record.Op {
	case "put", "create":
		if record.Value == nil {
			return Record{}, bad(line, "%s needs value", record.Op)
		}
	case "cas":
		if record.Value == nil || record.Prev == nil {
			return Record{}, bad(line, "cas needs value and prev")
		}
	case "get", "delete":
	case "grant", "keepalive", "revoke":
		if record.Lease == 0 {
			return Record{}, bad(line, "%s needs a lease (a non-zero ID)", record.Op)
		}
		if record.Op != "revoke" && record.Outcome == Answered && raw.TTL == nil {
			return Record{}, bad(line, "an answered %s needs the ttl the server gave", record.Op)
		}
	default:
		return Record{}, bad(line, "unknown op %q (put, get, delete, create, cas, grant, keepalive, revoke)",
			record.Op)
	}
	if record.Outcome == Answered {
		switch record.Op {
		case "get":
			result, present := fields["result"]
			if !present {
				return Record{}, bad(line, "an answered get needs result (the value, or null for no key)")
			}
			if string(result) != "null" {
				var value string
				if err := json.Unmarshal(result, &value); err != nil {
					return Record{}, bad(line, "result must be a string or null")
				}
				record.Result = &value
			}
		case "create", "cas":
			if raw.Succeeded == nil {
				return Record{}, bad(line, "an answered %s needs succeeded (did the comparison hold)",
					record.Op)
			}
			record.Succeeded = *raw.Succeeded
		}
	}
	return record, nil
}

// checkLeaseKeys: the model is partitioned per key, so a lease may carry one key only
// (Patroni's leader lease carries the leader key).
func checkLeaseKeys(records []Record) error {
	keyOf := map[int64]string{}
	for _, r := range records {
		if r.Lease == 0 || r.Op == "grant" || r.Op == "keepalive" {
			continue
		}
		if key, seen := keyOf[r.Lease]; seen && key != r.Key {
			return bad(r.Line, "lease %d is used with keys %q and %q: a lease may carry one key only",
				r.Lease, key, r.Key)
		}
		keyOf[r.Lease] = r.Key
	}
	return nil
}

// LeaseFloors: for each lease, the time before which it cannot have expired. A grant or
// keepalive answered with TTL t, called at c, renewed the lease at some moment s >= c, so
// it lives at least until s + t >= c + t (the server and the recorder read the same
// monotonic clock: one host, or containers on one kernel). Leader changes only extend
// leases. A lease with no answered grant or keepalive may have expired at any time.
func LeaseFloors(records []Record) map[int64]int64 {
	floors := map[int64]int64{}
	for _, r := range records {
		if (r.Op == "grant" || r.Op == "keepalive") && r.Outcome == Answered && r.TTL > 0 {
			until := r.Call + r.TTL*1_000_000_000
			if until > floors[r.Lease] {
				floors[r.Lease] = until
			}
		}
	}
	return floors
}

// byCall orders records by call time, then line (for stable output).
func byCall(records []Record) {
	sort.SliceStable(records, func(i, j int) bool {
		if records[i].Call != records[j].Call {
			return records[i].Call < records[j].Call
		}
		return records[i].Line < records[j].Line
	})
}
