package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func judge(t *testing.T, lines ...string) porcupine.CheckResult {
	t.Helper()
	records, err := ReadHistory(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("bad input: %v", err)
	}
	return Check(records, 10*time.Second).Result
}

var histories = []struct {
	name  string
	want  porcupine.CheckResult
	lines []string
}{
	{"the issue's line is valid and linearizable", porcupine.Ok, []string{
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 10, "ok": true}`,
	}},
	{"read after write sees it", porcupine.Ok, []string{
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 10, "ok": true}`,
		`{"client": 2, "op": "get", "key": "x", "call": 20, "return": 30, "ok": true, "result": "1"}`,
	}},
	{"stale read after a newer write", porcupine.Illegal, []string{
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 10, "ok": true}`,
		`{"client": 1, "op": "put", "key": "x", "value": "2", "call": 20, "return": 30, "ok": true}`,
		`{"client": 2, "op": "get", "key": "x", "call": 40, "return": 50, "ok": true, "result": "1"}`,
	}},
	{"a concurrent read may see either value", porcupine.Ok, []string{
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 10, "ok": true}`,
		`{"client": 1, "op": "put", "key": "x", "value": "2", "call": 20, "return": 30, "ok": true}`,
		`{"client": 2, "op": "get", "key": "x", "call": 25, "return": 50, "ok": true, "result": "1"}`,
	}},
	{"acknowledged write lost", porcupine.Illegal, []string{
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 10, "ok": true}`,
		`{"client": 2, "op": "get", "key": "x", "call": 20, "return": 30, "ok": true, "result": null}`,
	}},
	{"a write that failed for sure must not appear", porcupine.Illegal, []string{
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 10, "ok": false}`,
		`{"client": 2, "op": "get", "key": "x", "call": 20, "return": 30, "ok": true, "result": "1"}`,
	}},
	{"an unknown write may appear", porcupine.Ok, []string{
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": null, "ok": null}`,
		`{"client": 2, "op": "get", "key": "x", "call": 20, "return": 30, "ok": true, "result": "1"}`,
	}},
	{"an unknown write may appear late", porcupine.Ok, []string{
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": null, "ok": null}`,
		`{"client": 2, "op": "get", "key": "x", "call": 20, "return": 30, "ok": true, "result": null}`,
		`{"client": 2, "op": "get", "key": "x", "call": 40, "return": 50, "ok": true, "result": "1"}`,
	}},
	{"an unknown write may never appear", porcupine.Ok, []string{
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": null, "ok": null}`,
		`{"client": 2, "op": "get", "key": "x", "call": 20, "return": 30, "ok": true, "result": null}`,
	}},
	{"an unknown write once seen cannot vanish", porcupine.Illegal, []string{
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": null, "ok": null}`,
		`{"client": 2, "op": "get", "key": "x", "call": 20, "return": 30, "ok": true, "result": "1"}`,
		`{"client": 2, "op": "get", "key": "x", "call": 40, "return": 50, "ok": true, "result": null}`,
	}},
	{"a value nobody wrote", porcupine.Illegal, []string{
		`{"client": 2, "op": "get", "key": "x", "call": 20, "return": 30, "ok": true, "result": "9"}`,
	}},
	{"delete then read", porcupine.Ok, []string{
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 10, "ok": true}`,
		`{"client": 1, "op": "delete", "key": "x", "call": 20, "return": 30, "ok": true}`,
		`{"client": 2, "op": "get", "key": "x", "call": 40, "return": 50, "ok": true, "result": null}`,
	}},
	{"keys are independent", porcupine.Ok, []string{
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 10, "ok": true}`,
		`{"client": 1, "op": "put", "key": "y", "value": "2", "call": 20, "return": 30, "ok": true}`,
		`{"client": 2, "op": "get", "key": "x", "call": 40, "return": 50, "ok": true, "result": "1"}`,
	}},
	{"leader key: one create wins, the other sees it held", porcupine.Ok, []string{
		`{"client": 1, "op": "grant", "lease": 11, "ttl": 10, "call": 0, "return": 5, "ok": true}`,
		`{"client": 2, "op": "grant", "lease": 22, "ttl": 10, "call": 0, "return": 5, "ok": true}`,
		`{"client": 1, "op": "create", "key": "L", "value": "a", "lease": 11, "call": 10, "return": 20, "ok": true, "succeeded": true}`,
		`{"client": 2, "op": "create", "key": "L", "value": "b", "lease": 22, "call": 12, "return": 22, "ok": true, "succeeded": false}`,
		`{"client": 1, "op": "cas", "key": "L", "prev": "a", "value": "a2", "lease": 11, "call": 30, "return": 40, "ok": true, "succeeded": true}`,
		`{"client": 2, "op": "cas", "key": "L", "prev": "a", "value": "b2", "lease": 22, "call": 50, "return": 60, "ok": true, "succeeded": false}`,
	}},
	{"leader key: two clients both win the create", porcupine.Illegal, []string{
		`{"client": 1, "op": "grant", "lease": 11, "ttl": 10, "call": 0, "return": 5, "ok": true}`,
		`{"client": 2, "op": "grant", "lease": 22, "ttl": 10, "call": 0, "return": 5, "ok": true}`,
		`{"client": 1, "op": "create", "key": "L", "value": "a", "lease": 11, "call": 10, "return": 20, "ok": true, "succeeded": true}`,
		`{"client": 2, "op": "create", "key": "L", "value": "b", "lease": 22, "call": 30, "return": 40, "ok": true, "succeeded": true}`,
	}},
	{"leader key: two clients both win the same cas", porcupine.Illegal, []string{
		`{"client": 1, "op": "put", "key": "L", "value": "a", "call": 0, "return": 10, "ok": true}`,
		`{"client": 1, "op": "cas", "key": "L", "prev": "a", "value": "b", "call": 20, "return": 30, "ok": true, "succeeded": true}`,
		`{"client": 2, "op": "cas", "key": "L", "prev": "a", "value": "c", "call": 21, "return": 31, "ok": true, "succeeded": true}`,
	}},
	{"leader key: a second create wins once the lease may have expired", porcupine.Ok, []string{
		`{"client": 1, "op": "grant", "lease": 11, "ttl": 2, "call": 0, "return": 5, "ok": true}`,
		`{"client": 1, "op": "create", "key": "L", "value": "a", "lease": 11, "call": 10, "return": 20, "ok": true, "succeeded": true}`,
		`{"client": 2, "op": "create", "key": "L", "value": "b", "call": 3000000000, "return": 3000000010, "ok": true, "succeeded": true}`,
	}},
	{"leader key: a keepalive holds the lease past its first TTL", porcupine.Illegal, []string{
		`{"client": 1, "op": "grant", "lease": 11, "ttl": 2, "call": 0, "return": 5, "ok": true}`,
		`{"client": 1, "op": "create", "key": "L", "value": "a", "lease": 11, "call": 10, "return": 20, "ok": true, "succeeded": true}`,
		`{"client": 1, "op": "keepalive", "lease": 11, "ttl": 2, "call": 1500000000, "return": 1500000010, "ok": true}`,
		`{"client": 2, "op": "create", "key": "L", "value": "b", "call": 3000000000, "return": 3000000010, "ok": true, "succeeded": true}`,
	}},
	{"leader key: a lease without an answered grant may be gone at any time", porcupine.Ok, []string{
		`{"client": 1, "op": "create", "key": "L", "value": "a", "lease": 11, "call": 10, "return": 20, "ok": true, "succeeded": true}`,
		`{"client": 2, "op": "get", "key": "L", "call": 30, "return": 40, "ok": true, "result": null}`,
	}},
	{"leader key: revoke deletes it", porcupine.Ok, []string{
		`{"client": 1, "op": "grant", "lease": 11, "ttl": 10, "call": 0, "return": 5, "ok": true}`,
		`{"client": 1, "op": "create", "key": "L", "value": "a", "lease": 11, "call": 10, "return": 20, "ok": true, "succeeded": true}`,
		`{"client": 1, "op": "revoke", "lease": 11, "key": "L", "call": 30, "return": 40, "ok": true}`,
		`{"client": 2, "op": "create", "key": "L", "value": "b", "call": 50, "return": 60, "ok": true, "succeeded": true}`,
	}},
	{"leader key: an unknown cas may have won", porcupine.Ok, []string{
		`{"client": 1, "op": "put", "key": "L", "value": "a", "call": 0, "return": 10, "ok": true}`,
		`{"client": 1, "op": "cas", "key": "L", "prev": "a", "value": "b", "call": 20, "return": null, "ok": null}`,
		`{"client": 2, "op": "get", "key": "L", "call": 40, "return": 50, "ok": true, "result": "b"}`,
	}},
	{"leader key: an unknown cas cannot win when its comparison failed", porcupine.Illegal, []string{
		`{"client": 1, "op": "put", "key": "L", "value": "z", "call": 0, "return": 10, "ok": true}`,
		`{"client": 1, "op": "cas", "key": "L", "prev": "a", "value": "b", "call": 20, "return": null, "ok": null}`,
		`{"client": 2, "op": "get", "key": "L", "call": 40, "return": 50, "ok": true, "result": "b"}`,
	}},
	{"a failed comparison is a read too", porcupine.Illegal, []string{
		`{"client": 1, "op": "put", "key": "L", "value": "a", "call": 0, "return": 10, "ok": true}`,
		`{"client": 2, "op": "cas", "key": "L", "prev": "a", "value": "b", "call": 20, "return": 30, "ok": true, "succeeded": false}`,
	}},
}

func TestHistories(t *testing.T) {
	for _, h := range histories {
		t.Run(h.name, func(t *testing.T) {
			if got := judge(t, h.lines...); got != h.want {
				t.Fatalf("got %s, want %s", got, h.want)
			}
		})
	}
}

func TestBadInputIsRefusedWithExit2(t *testing.T) {
	for _, text := range []string{
		``,
		`not json`,
		`{"client": 1, "op": "put", "key": "x", "call": 0, "return": 10, "ok": true}`,
		`{"client": 1, "op": "get", "key": "x", "call": 0, "return": 10, "ok": true}`,
		`{"client": 1, "op": "frob", "key": "x", "call": 0, "return": 10, "ok": true}`,
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 10, "return": 5, "ok": true}`,
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 5}`,
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 5, "ok": null}`,
		`{"client": 1, "op": "put", "key": "x", "value": 1, "call": 0, "return": 5, "ok": true}`,
		`{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 5, "ok": true, "colour": 1}`,
		`{"client": 1, "op": "create", "key": "x", "value": "1", "call": 0, "return": 5, "ok": true}`,
		`{"client": 1, "op": "cas", "key": "x", "value": "1", "call": 0, "return": 5, "ok": true, "succeeded": true}`,
		`{"client": 1, "op": "grant", "lease": 3, "call": 0, "return": 5, "ok": true}` + "\n" +
			`{"client": 1, "op": "put", "key": "x", "value": "1", "lease": 3, "call": 0, "return": 5, "ok": true}` + "\n" +
			`{"client": 1, "op": "put", "key": "y", "value": "1", "lease": 3, "call": 0, "return": 5, "ok": true}`,
	} {
		path := filepath.Join(t.TempDir(), "h.jsonl")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errs bytes.Buffer
		if code := run([]string{path}, &out, &errs); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stdout %q)", text, code, out.String())
		} else if !strings.Contains(errs.String(), "error:") {
			t.Errorf("%q: no error message: %q", text, errs.String())
		}
	}
}

func TestIllegalPrintsTheShortestWindowAndWritesTheVisualisation(t *testing.T) {
	var lines []string
	// A long, healthy prefix on the same key, then one stale read at the end.
	for i := 0; i < 50; i++ {
		at := int64(i) * 100
		v := string(rune('a' + i%26))
		lines = append(lines,
			`{"client": 1, "op": "put", "key": "x", "value": "`+v+`", "call": `+itoa(at)+`, "return": `+itoa(at+10)+`, "ok": true}`,
			`{"client": 2, "op": "get", "key": "x", "call": `+itoa(at+20)+`, "return": `+itoa(at+30)+`, "ok": true, "result": "`+v+`"}`)
	}
	lines = append(lines, `{"client": 3, "op": "get", "key": "x", "call": 6000, "return": 6010, "ok": true, "result": "c"}`)
	dir := t.TempDir()
	path := filepath.Join(dir, "run.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	if code := run([]string{path}, &out, &errs); code != 1 {
		t.Fatalf("exit %d, want 1: %s %s", code, out.String(), errs.String())
	}
	text := out.String()
	// Two operations: the stale read and the read just before it (which saw "x").
	if !strings.Contains(text, "holds 2 operations") || !strings.Contains(text, `get("x") -> "c"`) ||
		!strings.Contains(text, `get("x") -> "x"`) {
		t.Fatalf("window is not the last read and the stale read:\n%s", text)
	}
	if info, err := os.Stat(filepath.Join(dir, "run.html")); err != nil || info.Size() == 0 {
		t.Fatalf("no visualisation beside the history: %v", err)
	}
}

func TestLinearizableExitsZero(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.jsonl")
	line := `{"client": 1, "op": "put", "key": "x", "value": "1", "call": 0, "return": 10, "ok": true}`
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	if code := run([]string{path}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errs.String())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
