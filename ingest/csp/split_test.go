package csp

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzSplitObject: on any valid JSON object splitObject either declines or
// gives exactly what json.Unmarshal into a map of raw values gives.
func FuzzSplitObject(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a" : "x" , "b":[1,{"c":"]}"}],"a":null}`,
		`{"csp-report":{"document-uri":"https://a.example/","blocked-uri":"inline","line-number":5,"status-code":200.0,"x":true,"y":false}}`,
		`{"k\u00e9":1}`, `{"é":1}`, `{"a":"\"}{"}`, `{"a":-1.5e+3,"b":[]}`, "{\n\t\"a\"\r:\n{}\n}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.TrimSpace(data)
		if !json.Valid(data) || len(data) == 0 || data[0] != '{' {
			return
		}
		got, ok := splitObject(data)
		if !ok {
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("json.Unmarshal: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d members, json.Unmarshal %d", data, len(got), len(want))
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("%q: member %q = %q, json.Unmarshal %q", data, k, got[k], v)
			}
		}
	})
}

// FuzzSplitArray: on any valid JSON array splitArray gives exactly what
// json.Unmarshal into a slice of raw values gives.
func FuzzSplitArray(f *testing.F) {
	for _, s := range []string{`[]`, ` [ ] `, `[1, "a" ,{"b":[2]},[[]],null,true]`, "[\n{\"type\":\"csp-violation\",\"body\":{}}\n]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.TrimSpace(data)
		if !json.Valid(data) || len(data) == 0 || data[0] != '[' {
			return
		}
		got, ok := splitArray(data)
		if !ok {
			t.Fatalf("splitArray declined the valid %q", data)
		}
		var want []json.RawMessage
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d elements, json.Unmarshal %d", data, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%q: element %d = %q, json.Unmarshal %q", data, i, got[i], want[i])
			}
		}
	})
}

// TestSplitObjectDeclines: keys json.Unmarshal would rewrite are left to it.
func TestSplitObjectDeclines(t *testing.T) {
	for _, s := range []string{`{"k\u00e9":1}`, `{"é":1}`, `[1]`} {
		if _, ok := splitObject([]byte(s)); ok {
			t.Errorf("splitObject(%s) accepted", s)
		}
	}
	m, ok := splitObject([]byte(`{"a":1,"a":2}`))
	if !ok || string(m["a"]) != "2" {
		t.Errorf("a repeated key: %v %v", m, ok)
	}
}
