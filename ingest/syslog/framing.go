package syslog

import (
	"bytes"
	"errors"
	"io"
)

// Errors of frameReader.next.
var (
	// errFrameTooLong reports a frame longer than the limit; it was skipped
	// and the next call reads the frame after it.
	errFrameTooLong = errors.New("frame longer than max_message, skipped")
	// errBadFraming reports an octet-counting stream whose MSG-LEN is not a
	// number; the stream cannot be resynchronised.
	errBadFraming = errors.New("octet counting: MSG-LEN is not a number")
)

// framing is how a TCP stream separates its messages.
type framing uint8

const (
	framingUnknown framing = iota
	framingOctet           // RFC 6587 octet counting: "MSG-LEN SP SYSLOG-MSG"
	framingNewline         // RFC 6587 non-transparent framing: one message per line
)

// maxLenDigits is the most digits of an octet-counting MSG-LEN.
const maxLenDigits = 9

// frameReader cuts a TCP stream into syslog messages. The framing is chosen
// from the stream's first byte (after any line ends or spaces): a digit
// means octet counting, anything else newline-delimited. A frameReader is
// owned by one goroutine.
type frameReader struct {
	r    io.Reader
	max  int    // longest frame accepted
	buf  []byte // grows up to max + maxLenDigits + 2
	head int    // buf[head:tail] is read and not yet consumed
	tail int
	seen int     // newline framing: bytes after head already searched for '\n'
	skip bool    // newline framing: dropping a line over max up to its '\n'
	mode framing // framingUnknown until the first byte is read
	err  error   // sticky: the error of r, or errBadFraming
}

// newFrameReader returns a reader of frames of up to maxFrame bytes from r.
func newFrameReader(r io.Reader, maxFrame int) *frameReader {
	return &frameReader{r: r, max: maxFrame, buf: make([]byte, min(4096, maxFrame+maxLenDigits+2))}
}

// next returns the next frame, which is valid until the following call. It
// returns errFrameTooLong for a skipped frame (call again for the next
// one), io.EOF at the end of the stream between frames,
// io.ErrUnexpectedEOF when the stream ends inside an octet-counted frame,
// errBadFraming, or the error of the underlying reader. In newline framing,
// empty lines are skipped and a last line without '\n' is a frame.
func (f *frameReader) next() ([]byte, error) {
	if f.mode == framingUnknown {
		if err := f.skipBlanks(); err != nil {
			return nil, err
		}
		if isDigit(f.buf[f.head]) {
			f.mode = framingOctet
		} else {
			f.mode = framingNewline
		}
	}
	if f.mode == framingOctet {
		return f.nextOctet()
	}
	return f.nextLine()
}

// nextLine returns the next non-empty line, without its '\n'.
func (f *frameReader) nextLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(f.buf[f.head+f.seen:f.tail], '\n'); i >= 0 {
			line := f.buf[f.head : f.head+f.seen+i]
			f.head += f.seen + i + 1
			f.seen = 0
			if f.skip || len(line) > f.max {
				f.skip = false
				return nil, errFrameTooLong
			}
			if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
				continue
			}
			return line, nil
		}
		f.seen = f.tail - f.head
		if f.skip || f.seen > f.max {
			// Too long already: drop what was read and look for the end.
			f.skip = true
			f.head, f.tail, f.seen = 0, 0, 0
		}
		if err := f.fill(); err != nil {
			if f.skip {
				f.skip = false
				return nil, errFrameTooLong
			}
			if f.tail > f.head && errors.Is(err, io.EOF) {
				line := f.buf[f.head:f.tail]
				f.head, f.seen = f.tail, 0
				if len(line) > f.max {
					return nil, errFrameTooLong
				}
				if len(line) == 1 && line[0] == '\r' {
					return nil, err
				}
				return line, nil
			}
			return nil, err
		}
	}
}

// nextOctet returns the next octet-counted frame. Line ends and spaces
// between frames, which some senders add, are skipped; so are empty frames.
func (f *frameReader) nextOctet() ([]byte, error) {
	for {
		if err := f.skipBlanks(); err != nil {
			return nil, err
		}
		// Read MSG-LEN and its space; j is relative to head, which fill
		// may move.
		n, j := 0, 0
		for {
			if f.head+j == f.tail {
				if err := f.fill(); err != nil {
					return nil, unexpected(err)
				}
				continue
			}
			c := f.buf[f.head+j]
			if c == ' ' && j > 0 {
				break
			}
			if !isDigit(c) || j == maxLenDigits {
				return nil, f.fail(errBadFraming)
			}
			n = n*10 + int(c-'0')
			j++
		}
		f.head += j + 1
		if n > f.max {
			return nil, f.discard(n)
		}
		for f.tail-f.head < n {
			if err := f.fill(); err != nil {
				return nil, unexpected(err)
			}
		}
		frame := f.buf[f.head : f.head+n]
		f.head += n
		if n > 0 {
			return frame, nil
		}
	}
}

// discard consumes n bytes of a frame that is too long.
func (f *frameReader) discard(n int) error {
	for {
		k := min(n, f.tail-f.head)
		f.head += k
		n -= k
		if n == 0 {
			return errFrameTooLong
		}
		if err := f.fill(); err != nil {
			return unexpected(err)
		}
	}
}

// skipBlanks consumes '\n', '\r' and ' ' and returns with at least one
// other byte unread, or io.EOF when the stream ends first.
func (f *frameReader) skipBlanks() error {
	for {
		for f.head < f.tail {
			if c := f.buf[f.head]; c != '\n' && c != '\r' && c != ' ' {
				return nil
			}
			f.head++
		}
		if err := f.fill(); err != nil {
			return err
		}
	}
}

// fill reads more bytes after tail, first moving the unread bytes to the
// start of buf and growing buf when it is full. It returns the sticky read
// error once nothing more was read.
func (f *frameReader) fill() error {
	if f.err != nil {
		return f.err
	}
	if f.head > 0 {
		copy(f.buf, f.buf[f.head:f.tail])
		f.tail -= f.head
		f.head = 0
	}
	if f.tail == len(f.buf) {
		limit := f.max + maxLenDigits + 2
		if len(f.buf) >= limit {
			return f.fail(errors.New("syslog: frame buffer full")) // unreachable: frames are checked against max first
		}
		nb := make([]byte, min(2*len(f.buf), limit))
		copy(nb, f.buf[:f.tail])
		f.buf = nb
	}
	for range 100 {
		n, err := f.r.Read(f.buf[f.tail:])
		f.tail += n
		if err != nil {
			f.err = err
		}
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return f.fail(io.ErrNoProgress)
}

// fail makes err sticky and returns it.
func (f *frameReader) fail(err error) error {
	f.err = err
	return err
}

// unexpected turns io.EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
