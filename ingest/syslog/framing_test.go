package syslog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// octet frames msgs with RFC 6587 octet counting.
func octet(msgs ...string) string {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "%d %s", len(m), m)
	}
	return b.String()
}

// readFrames reads every frame of r, rendering errors as "!error".
func readFrames(t testing.TB, r io.Reader, maxFrame, limit int) []string {
	t.Helper()
	fr := newFrameReader(r, maxFrame)
	var out []string
	for range limit {
		frame, err := fr.next()
		switch {
		case err == nil:
			if len(frame) > maxFrame {
				t.Fatalf("frame of %d bytes, max %d", len(frame), maxFrame)
			}
			out = append(out, string(frame))
		case errors.Is(err, errFrameTooLong):
			out = append(out, "!too-long")
		case errors.Is(err, io.EOF):
			return out
		default:
			return append(out, "!"+err.Error())
		}
	}
	t.Fatalf("no end after %d calls: %q", limit, out)
	return nil
}

func TestFrameReader(t *testing.T) {
	long := "<13>" + strings.Repeat("x", 40)
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty stream", "", nil},
		{"octet counting", octet("<13>a", "<14>bc", "<165>1 - - - - - - hi\n"), []string{"<13>a", "<14>bc", "<165>1 - - - - - - hi\n"}},
		{"octet counting, line ends between frames", "\r\n" + octet("<13>a") + "\n" + octet("<13>b") + " \n", []string{"<13>a", "<13>b"}},
		{"octet counting, empty frame skipped", "0 " + octet("<13>a"), []string{"<13>a"}},
		{"octet counting, frame over max skipped", octet("<13>a", long, "<13>b"), []string{"<13>a", "!too-long", "<13>b"}},
		{"octet counting, huge length at the end", "999999999 <13>a", []string{"!" + io.ErrUnexpectedEOF.Error()}},
		{"octet counting, bad length", octet("<13>a") + "12x <13>b", []string{"<13>a", "!" + errBadFraming.Error()}},
		{"octet counting, too many digits", "1234567890 x", []string{"!" + errBadFraming.Error()}},
		{"octet counting, cut short", "10 <13>a", []string{"!" + io.ErrUnexpectedEOF.Error()}},
		{"octet counting, cut in length", octet("<13>a") + "12", []string{"<13>a", "!" + io.ErrUnexpectedEOF.Error()}},
		{"newline", "<13>a\n<14>bc\r\n\n\r\n<15>d\n", []string{"<13>a", "<14>bc\r", "<15>d"}},
		{"newline, last line without newline", "<13>a\n<13>b", []string{"<13>a", "<13>b"}},
		{"newline, line over max skipped", "<13>a\n" + long + "\n<13>b\n", []string{"<13>a", "!too-long", "<13>b"}},
		{"newline, line over max at the end", "<13>a\n" + long, []string{"<13>a", "!too-long"}},
		{"newline, not syslog at all", "hello\nworld", []string{"hello", "world"}},
		{"newline, digits later are not lengths", "<13>a\n5 <1>a\n", []string{"<13>a", "5 <1>a"}},
	}
	readers := map[string]func(string) io.Reader{
		"whole":    func(s string) io.Reader { return strings.NewReader(s) },
		"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"data+err": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
		"halves":   func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
	}
	for _, tt := range tests {
		for rname, mk := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				got := readFrames(t, mk(tt.in), 32, 1000)
				if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
					t.Errorf("frames of %q:\n got %q\nwant %q", tt.in, got, tt.want)
				}
			})
		}
	}
}

// TestFrameReaderGrows checks frames longer than the first buffer, up to
// max, in both framings.
func TestFrameReaderGrows(t *testing.T) {
	const maxFrame = 20000
	big := "<13>" + strings.Repeat("y", maxFrame-4)
	for _, in := range []string{octet("<13>a", big, "<13>b"), "<13>a\n" + big + "\n<13>b"} {
		got := readFrames(t, iotest.HalfReader(strings.NewReader(in)), maxFrame, 100)
		if len(got) != 3 || got[0] != "<13>a" || got[1] != big || got[2] != "<13>b" {
			t.Errorf("frames of %.20q...: %.40q", in, got)
		}
	}
}

// TestFrameReaderNoProgress checks that a reader that returns nothing, and
// no error, for ever does not hang the frame reader.
func TestFrameReaderNoProgress(t *testing.T) {
	got := readFrames(t, zeroReader{}, 32, 10)
	if len(got) != 1 || got[0] != "!"+io.ErrNoProgress.Error() {
		t.Errorf("frames: %q", got)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// FuzzFrameReader feeds random streams through the frame reader, whole and
// in chunks of every size: it must not panic, must end, must return no
// frame over max, and must cut the stream the same way whatever the chunks.
func FuzzFrameReader(f *testing.F) {
	f.Add([]byte(octet("<13>a", "<14>bc")), uint8(1))
	f.Add([]byte("<13>a\n<14>bc\r\n\n<15>d"), uint8(2))
	f.Add([]byte(octet("<13>a", strings.Repeat("z", 40), "<13>b")), uint8(3))
	f.Add([]byte("<13>a\n"+strings.Repeat("z", 40)+"\n<13>b\n"), uint8(5))
	f.Add([]byte("0 0 \n 5 <1>ab12x"), uint8(7))
	f.Add([]byte("999999999 <1>"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		const maxFrame = 32
		if len(data) > 1024 { // larger streams find nothing new and slow minimizing
			return
		}
		limit := len(data) + 2 // each frame or skip consumes at least one byte
		want := readFrames(t, bytes.NewReader(data), maxFrame, limit)
		got := readFrames(t, &chunkReader{data: data, n: int(chunk%16) + 1}, maxFrame, limit)
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("chunks of %d:\n got %q\nwant %q", chunk%16+1, got, want)
		}
	})
}

// chunkReader returns data n bytes at a time.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.data)
	r.data = r.data[k:]
	return k, nil
}
