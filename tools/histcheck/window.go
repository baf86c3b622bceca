package main

// The shortest offending window: of the first key that fails, the earliest prefix of time
// that is already not linearizable, then the latest start that keeps it so.

import (
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Window of one key's operations that cannot be linearized.
type Window struct {
	Key     string
	Records []Record
	Initial []State
	Model   porcupine.Model
}

// prefix: the history as it stood at time `end`. Operations still running then become
// unknown outcomes (they may or may not take effect); those called later are dropped.
// Sound: a linearization of the whole history restricts to one of the prefix.
func prefix(records []Record, end int64) []Record {
	var kept []Record
	for _, r := range records {
		switch {
		case r.Call > end:
		case r.Return <= end:
			kept = append(kept, r)
		default:
			kept = append(kept, unknownCopy(r)...)
		}
	}
	return kept
}

// suffix: the operations linearized at or after `start`, with the states the key may
// hold at `start`: none, or any value written by a call made before it. Operations
// running across `start` become unknown outcomes (they may have taken effect before).
func suffix(records []Record, start int64) ([]Record, []State) {
	initial := []State{absent}
	seen := map[State]bool{absent: true}
	var kept []Record
	for _, r := range records {
		if r.Call < start && r.Value != nil {
			s := State{true, *r.Value, r.Lease}
			if !seen[s] {
				seen[s] = true
				initial = append(initial, s)
			}
		}
		switch {
		case r.Return < start:
		case r.Call >= start:
			kept = append(kept, r)
		default:
			kept = append(kept, unknownCopy(r)...)
		}
	}
	return kept, initial
}

func unknownCopy(r Record) []Record {
	if r.Op == "get" {
		return nil // a read without its answer says nothing
	}
	r.Outcome, r.Return, r.Succeeded = Unknown, Never, false
	return []Record{r}
}

func illegal(records []Record, floors map[int64]int64, initial []State, timeout time.Duration) bool {
	if len(records) == 0 {
		return false
	}
	model := KeyModel(floors, initial)
	return porcupine.CheckOperationsTimeout(model, Operations(records), timeout) == porcupine.Illegal
}

// Shortest finds the offending window of a history porcupine found illegal.
func Shortest(checked []Record, floors map[int64]int64, timeout time.Duration) Window {
	byKey := map[string][]Record{}
	for _, r := range checked {
		byKey[r.Key] = append(byKey[r.Key], r)
	}
	var best *Window
	var bestEnd int64
	keys := make([]string, 0, len(byKey))
	for key := range byKey {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		records := byKey[key]
		byCall(records)
		if !illegal(records, floors, nil, timeout) {
			continue
		}
		// Earliest end: legal(prefix(b')) implies legal(prefix(b)) for b < b'.
		var ends []int64
		for _, r := range records {
			if r.Return != Never {
				ends = append(ends, r.Return)
			}
		}
		sort.Slice(ends, func(i, j int) bool { return ends[i] < ends[j] })
		at := sort.Search(len(ends), func(i int) bool {
			return illegal(prefix(records, ends[i]), floors, nil, timeout)
		})
		end := int64(Never)
		if at < len(ends) {
			end = ends[at]
		}
		if best != nil && end >= bestEnd {
			continue
		}
		upTo := prefix(records, end)
		// Latest start: a window that is illegal stays illegal when it starts earlier.
		starts := make([]int64, 0, len(upTo))
		for _, r := range upTo {
			starts = append(starts, r.Call)
		}
		sort.Slice(starts, func(i, j int) bool { return starts[i] > starts[j] })
		from := sort.Search(len(starts), func(i int) bool {
			window, initial := suffix(upTo, starts[i])
			return illegal(window, floors, initial, timeout)
		})
		window, initial := upTo, []State{absent}
		if from < len(starts) {
			window, initial = suffix(upTo, starts[from])
		}
		best = &Window{Key: key, Records: window, Initial: initial, Model: KeyModel(floors, initial)}
		bestEnd = end
	}
	if best == nil { // porcupine said illegal, yet no key alone is: cannot happen per key
		return Window{Records: checked, Initial: []State{absent}, Model: KeyModel(floors, nil)}
	}
	return *best
}
