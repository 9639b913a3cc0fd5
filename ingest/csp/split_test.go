package csp

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzEachMember: on any valid JSON object eachMember gives the members
// json.Unmarshal into a map of raw values gives (the last of a repeated
// key wins in both).
func FuzzEachMember(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a" : "x" , "b":[1,{"c":"]}"}],"a":null}`,
		`{"csp-report":{"document-uri":"https://a.example/","blocked-uri":"inline","line-number":5,"status-code":200.0,"x":true,"y":false}}`,
		`{"k\u00e9":1}`, `{"é":1}`, `{"a":"\"}{"}`, `{"a":-1.5e+3,"b":[]}`, "{\n\t\"a\"\r:\n{}\n}",
		`{"document\u002duri":"x","\ud800":1,"\"":2}`, "{\"\xff\":1}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.TrimSpace(data)
		if !json.Valid(data) || len(data) == 0 || data[0] != '{' {
			return
		}
		got := map[string]string{}
		if !eachMember(string(data), func(k, v string) { got[k] = v }) {
			t.Fatalf("eachMember refused the valid %q", data)
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("json.Unmarshal: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d members, json.Unmarshal %d", data, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != string(v) {
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
		got, ok := splitArray(string(data))
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
			if el := data[got[i].start:got[i].end]; !bytes.Equal(el, want[i]) {
				t.Fatalf("%q: element %d = %q, json.Unmarshal %q", data, i, el, want[i])
			}
		}
	})
}

// TestObjectDecode: the members Vigil reads are found under escaped keys
// too, the last of a repeated key wins, and other keys are skipped.
func TestObjectDecode(t *testing.T) {
	var o object
	if err := o.decode(`{"document\u002duri":"a","blocked-uri":"x","blocked-uri":"y","other":{"type":1}}`, "", ""); err != nil {
		t.Fatal(err)
	}
	if o.v[mDocumentURIHyphen] != `"a"` || o.v[mBlockedURIHyphen] != `"y"` || o.v[mType] != "" {
		t.Errorf("members: %q", o.v)
	}
	if !o.has(mBlockedURL, mBlockedURIHyphen) || o.has(mBlockedURL) {
		t.Error("has")
	}
	for _, s := range []string{`[1]`, `"x"`, `{"a":}`} {
		if err := o.decode(s, "[3]", "body"); err == nil {
			t.Errorf("decode(%s) accepted", s)
		}
	}
}

// TestDecodeStringShares: a string without escapes is a part of the body's
// text, not a copy; one with escapes or invalid UTF-8 is decoded as
// encoding/json does.
func TestDecodeStringShares(t *testing.T) {
	for raw, want := range map[string]string{
		`"plain"`: "plain", `"é"`: "é", `"a\"b"`: `a"b`, `"\u00e9"`: "é", "\"\xff\"": "\uFFFD", `""`: "",
	} {
		if got, ok := decodeString(raw); !ok || got != want {
			t.Errorf("decodeString(%s) = %q, %v; want %q", raw, got, ok, want)
		}
	}
	if _, ok := decodeString(`1`); ok {
		t.Error("decodeString(1) accepted a number")
	}
}
