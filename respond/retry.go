package respond

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// retryablePrefixes are the Redis error replies that say the server, not
// the request, is the problem for now: it is loading its data set, is a
// replica or lost its master, the cluster is reconfiguring, or it is out of
// clients, memory or busy with a script. A later retry of the same request
// can succeed.
var retryablePrefixes = []string{
	"LOADING ",
	"READONLY ",
	"CLUSTERDOWN ",
	"TRYAGAIN ",
	"MASTERDOWN ",
	"NOREPLICAS ",
	"BUSY ",
	"OOM ",
	"MOVED ",
	"ASK ",
	"ERR max number of clients reached",
	// A wrong or missing password is an operator's mistake, fixed without
	// restarting Vigil: bans wait for it instead of being dropped.
	"NOAUTH ",
	"WRONGPASS ",
	"NOPERM ",
}

// Retryable reports whether err is a Redis outage rather than a fault of
// the request: a network error or timeout, a refused or closed connection,
// an exhausted connection pool, a cancelled context (the process is
// stopping), a LOADING, READONLY, CLUSTERDOWN, TRYAGAIN, MASTERDOWN,
// NOREPLICAS, BUSY or OOM reply, an authentication or ACL refusal (NOAUTH,
// WRONGPASS, NOPERM: the operator fixes the credentials and nothing is lost), "max number of clients reached", or a MOVED
// or ASK redirect the cluster client gave up following. The caller should retry later, for
// instance by not acknowledging the alert so it is redelivered; nothing is
// lost because every write is idempotent. Anything else, such as an invalid
// argument or a script error, fails the same way on every retry.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, p := range retryablePrefixes {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	var nerr net.Error
	return errors.As(err, &nerr)
}
