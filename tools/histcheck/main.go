// histcheck: is a recorded etcd client history linearizable?
//
//	histcheck [-timeout 120s] HISTORY.jsonl
//
// Exit 0: linearizable. 1: not; the shortest window of operations that cannot be
// linearized is printed, and porcupine's visualisation of it is written beside the file
// (HISTORY.html). 2: bad input (the line and the cause are printed). 3: the checker did not
// decide within the timeout.
//
// One JSON object per line; times are monotonic nanoseconds:
//
//	{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 10, "ok": true}
//	{"client": 2, "op": "get", "key": "x", "call": 5, "return": 12, "ok": true, "result": "1"}
//	{"client": 3, "op": "delete", "key": "x", "call": 20, "return": null, "ok": null}
//	{"client": 1, "op": "grant", "lease": 7, "ttl": 3, "call": 30, "return": 31, "ok": true}
//	{"client": 1, "op": "create", "key": "leader", "value": "c1-1", "lease": 7,
//	 "call": 32, "return": 40, "ok": true, "succeeded": true}
//	{"client": 1, "op": "cas", "key": "leader", "prev": "c1-1", "value": "c1-2", "lease": 7,
//	 "call": 50, "return": 60, "ok": true, "succeeded": true}
//	{"client": 1, "op": "keepalive", "lease": 7, "ttl": 3, "call": 61, "return": 62, "ok": true}
//	{"client": 1, "op": "revoke", "lease": 7, "key": "leader", "call": 70, "return": 80, "ok": true}
//
// ok: true answered; ok: false failed for sure (no effect); ok: null with return: null an
// unknown outcome (may or may not have happened, at any time after the call). create puts
// if the key is absent, cas if it holds prev (both: etcd transactions, Patroni's leader
// key); succeeded says whether the comparison held. put, create and cas may attach a
// lease; a lease carries one key only.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("histcheck", flag.ContinueOnError)
	flags.SetOutput(stderr)
	timeout := flags.Duration("timeout", 120*time.Second, "give up (exit 3) after this long")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: histcheck [-timeout 120s] HISTORY.jsonl")
		return 2
	}
	path := flags.Arg(0)
	file, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "error: cannot read the history: %v\n", err)
		return 2
	}
	defer file.Close()
	records, err := ReadHistory(file)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s: %v\nfix: one JSON object per line, as `histcheck -h` shows\n",
			path, err)
		return 2
	}
	verdict := Check(records, *timeout)
	fmt.Fprintln(stdout, verdict.Summary)
	switch verdict.Result {
	case porcupine.Ok:
		return 0
	case porcupine.Unknown:
		return 3
	}
	for _, line := range verdict.Window {
		fmt.Fprintln(stdout, line)
	}
	html := strings.TrimSuffix(path, filepath.Ext(path)) + ".html"
	if err := porcupine.VisualizePath(verdict.Model, verdict.Info, html); err != nil {
		fmt.Fprintf(stderr, "could not write the visualisation: %v\n", err)
	} else {
		fmt.Fprintf(stdout, "visualisation of the window: %s\n", html)
	}
	return 1
}

// Verdict of one check.
type Verdict struct {
	Result  porcupine.CheckResult
	Summary string
	Window  []string // the offending window, one operation a line
	Model   porcupine.Model
	Info    porcupine.LinearizationInfo // of the window, for the visualisation
}

// Check judges a whole history.
func Check(records []Record, timeout time.Duration) Verdict {
	floors := LeaseFloors(records)
	checked := Checked(records)
	unknown, keys := 0, map[string]bool{}
	for _, r := range checked {
		keys[r.Key] = true
		if r.Outcome == Unknown {
			unknown++
		}
	}
	counts := fmt.Sprintf("%d operations checked (%d with unknown outcome) on %d keys, of %d recorded",
		len(checked), unknown, len(keys), len(records))
	model := KeyModel(floors, nil)
	result := porcupine.CheckOperationsTimeout(model, Operations(checked), timeout)
	switch result {
	case porcupine.Ok:
		return Verdict{Result: result, Summary: "linearizable: " + counts}
	case porcupine.Unknown:
		return Verdict{Result: result, Summary: fmt.Sprintf(
			"undecided: the checker gave up after %s; %s", timeout, counts)}
	}
	window := Shortest(checked, floors, timeout)
	verdict := Verdict{Result: result, Model: window.Model}
	verdict.Summary = fmt.Sprintf("NOT linearizable: %s\nkey %q: the shortest window that cannot be "+
		"linearized holds %d operations (times in ms from its start; lines of the file):",
		counts, window.Key, len(window.Records))
	start := window.Records[0].Call
	for _, r := range window.Records {
		end := "never answered"
		if r.Return != Never {
			end = fmt.Sprintf("%9.3f", float64(r.Return-start)/1e6)
		}
		verdict.Window = append(verdict.Window, fmt.Sprintf("  client %-3d %9.3f .. %s  %s   (line %d)",
			r.Client, float64(r.Call-start)/1e6, end, describe(&r), r.Line))
	}
	verdict.Window = append(verdict.Window, fmt.Sprintf("  the key may enter the window as: %s",
		statesText(window.Initial)))
	_, verdict.Info = porcupine.CheckOperationsVerbose(window.Model, Operations(window.Records), timeout)
	return verdict
}

func statesText(states []State) string {
	var parts []string
	for _, s := range states {
		parts = append(parts, s.String())
	}
	if len(parts) > 6 {
		parts = append(parts[:6], fmt.Sprintf("... (%d states)", len(states)))
	}
	return strings.Join(parts, ", ")
}
