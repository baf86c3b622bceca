package main

// The sequential specification of etcd's key-value store as dcsctl's recorder uses it,
// one key at a time: put, get, delete, create-if-absent and compare-and-swap (Patroni's
// leader key), leases that carry a key and delete it when revoked or expired.

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/anishathalye/porcupine"
)

// State of one key.
type State struct {
	Exists bool
	Value  string
	Lease  int64 // the lease the key is attached to, 0 for none
}

func (s State) String() string {
	if !s.Exists {
		return "(no key)"
	}
	if s.Lease != 0 {
		return fmt.Sprintf("%q lease %d", s.Value, s.Lease)
	}
	return fmt.Sprintf("%q", s.Value)
}

var absent = State{}

// Input is one operation as the model sees it (its record, which carries the output too).
type Input struct {
	Record *Record
}

// KeyModel builds the model for one history: `floors` (LeaseFloors) says until when each
// lease surely lives; `initial` the states a key may start in (nil: no key). A window cut
// out of a longer history starts its one key in any state the history before could leave.
func KeyModel(floors map[int64]int64, initial []State) porcupine.Model {
	if initial == nil {
		initial = []State{absent}
	}
	model := porcupine.NondeterministicModel{
		Partition: partitionByKey,
		Init: func() []interface{} {
			states := make([]interface{}, len(initial))
			for i, s := range initial {
				states[i] = s
			}
			return states
		},
		Step: func(state, input, _ interface{}) []interface{} {
			return step(floors, state.(State), input.(Input).Record)
		},
		Hash: func(state interface{}) uint64 {
			s := state.(State)
			h := fnv.New64a()
			fmt.Fprintf(h, "%t\x00%s\x00%d", s.Exists, s.Value, s.Lease)
			return h.Sum64()
		},
		DescribeOperation: func(input, _ interface{}) string {
			return describe(input.(Input).Record)
		},
		DescribeState: func(state interface{}) string {
			return state.(State).String()
		},
	}
	return model.ToModel()
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var keys []string
	for _, op := range history {
		key := op.Input.(Input).Record.Key
		if _, seen := byKey[key]; !seen {
			keys = append(keys, key)
		}
		byKey[key] = append(byKey[key], op)
	}
	sort.Strings(keys)
	partitions := make([][]porcupine.Operation, 0, len(keys))
	for _, key := range keys {
		partitions = append(partitions, byKey[key])
	}
	return partitions
}

// step: every state the key can be in after `r`, from `s`; none if `r`'s answer is
// impossible from `s`.
func step(floors map[int64]int64, s State, r *Record) []interface{} {
	before := []State{s}
	// A key whose lease may have expired by the time `r` took effect (at the latest, its
	// return) may already be gone: expiry deletes it without anyone asking.
	if s.Exists && s.Lease != 0 && r.Return >= floors[s.Lease] {
		before = append(before, absent)
	}
	var after []interface{}
	for _, p := range before {
		for _, next := range apply(p, r) {
			after = append(after, next)
		}
	}
	return after
}

func apply(p State, r *Record) []State {
	unknown := r.Outcome == Unknown
	maybe := func(applied State) []State {
		if unknown {
			return []State{p, applied}
		}
		return []State{applied}
	}
	switch r.Op {
	case "get":
		if r.Result == nil && !p.Exists || r.Result != nil && p.Exists && *r.Result == p.Value {
			return []State{p}
		}
		return nil
	case "put":
		return maybe(State{true, *r.Value, r.Lease})
	case "delete":
		return maybe(absent)
	case "revoke":
		if p.Exists && p.Lease == r.Lease {
			return maybe(absent)
		}
		return []State{p}
	case "create", "cas":
		holds := !p.Exists
		if r.Op == "cas" {
			holds = p.Exists && p.Value == *r.Prev
		}
		applied := State{true, *r.Value, r.Lease}
		switch {
		case unknown && holds:
			return []State{p, applied}
		case unknown:
			return []State{p}
		case r.Succeeded && holds:
			return []State{applied}
		case !r.Succeeded && !holds:
			return []State{p}
		}
		return nil
	}
	return nil
}

// Checked: the operations the model judges. Failed calls had no effect, and reads or
// lease calls without an answer say nothing; grants and keepalives only set lease floors.
func Checked(records []Record) []Record {
	var kept []Record
	for _, r := range records {
		if r.Outcome == Failed || r.Op == "grant" || r.Op == "keepalive" {
			continue
		}
		if r.Outcome == Unknown && r.Op == "get" {
			continue
		}
		kept = append(kept, r)
	}
	return kept
}

// Operations turns records into porcupine's operations.
func Operations(records []Record) []porcupine.Operation {
	ops := make([]porcupine.Operation, len(records))
	for i := range records {
		ops[i] = porcupine.Operation{ClientId: records[i].Client, Input: Input{&records[i]},
			Call: records[i].Call, Return: records[i].Return}
	}
	return ops
}

func describe(r *Record) string {
	str := func(p *string) string {
		if p == nil {
			return "(no key)"
		}
		return fmt.Sprintf("%q", *p)
	}
	lease := ""
	if r.Lease != 0 {
		lease = fmt.Sprintf(" lease %d", r.Lease)
	}
	succeeded := fmt.Sprint(r.Succeeded)
	if r.Outcome == Unknown {
		succeeded = "?"
	}
	var text string
	switch r.Op {
	case "get":
		text = fmt.Sprintf("get(%q) -> %s", r.Key, str(r.Result))
	case "put":
		text = fmt.Sprintf("put(%q, %s%s)", r.Key, str(r.Value), lease)
	case "delete":
		text = fmt.Sprintf("delete(%q)", r.Key)
	case "create":
		text = fmt.Sprintf("create(%q, %s%s) -> %s", r.Key, str(r.Value), lease, succeeded)
	case "cas":
		text = fmt.Sprintf("cas(%q, %s => %s%s) -> %s", r.Key, str(r.Prev), str(r.Value), lease,
			succeeded)
	case "revoke":
		text = fmt.Sprintf("revoke(lease %d of %q)", r.Lease, r.Key)
	default:
		text = r.Op
	}
	if r.Outcome == Unknown {
		text += " (outcome unknown)"
	}
	return text
}
