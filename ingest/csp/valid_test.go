package csp

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzValid: valid decides exactly as json.Valid and the depth limit do
// together.
func FuzzValid(f *testing.F) {
	for _, s := range []string{
		``, ` `, `{}`, `[]`, `[ ]`, `{ }`, `"a"`, `1`, `-0.5e+7`, `01`, `1.`, `.5`, `-`, `1e`, `true`, `tru`, `nul`, `falsey`,
		`{"a":1,}`, `[1,]`, `[1 2]`, `{"a" 1}`, `{1:2}`, `{"a":[}`, `[}`, `{]`, `"\u00e9\n\"\\\/"`, `"\x"`, `"\u12g4"`, "\"\x01\"",
		"\"\xff\"", ` {"csp-report":{"document-uri":"https://a.example/","line-number":5}} `, `[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]`,
		`[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]`, `{"a":{"b":{"c":[null,true,false,-1,0,1.5E-3]}}}`, `[]]`, `{}}`, `1 1`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, shallow := checkDepth(b, MaxDepth)
		want := json.Valid(b) && shallow
		if got := valid(b); got != want {
			t.Fatalf("valid(%q) = %v, json.Valid and the depth limit say %v", b, got, want)
		}
	})
}

// TestValidDepth: the limit counts every open bracket.
func TestValidDepth(t *testing.T) {
	deep := func(n int) []byte { return []byte(strings.Repeat("[", n) + strings.Repeat("]", n)) }
	if !valid(deep(MaxDepth)) || valid(deep(MaxDepth+1)) {
		t.Errorf("depth %d must pass and %d fail", MaxDepth, MaxDepth+1)
	}
	if !valid([]byte(`{"a":[{"b":[]}]}`)) || valid([]byte(`{"a":[{"b":[]]}`)) {
		t.Error("mixed containers")
	}
}
