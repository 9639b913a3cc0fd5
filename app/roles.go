package app

import (
	"errors"
	"fmt"
	"strings"
)

// The roles a process can run (Config.Roles).
const (
	RoleIngest  = "ingest"
	RoleDetect  = "detect"
	RoleRespond = "respond"
	RoleIndex   = "index"
)

// allRoles lists the roles in the order they are described.
var allRoles = []string{RoleIngest, RoleDetect, RoleRespond, RoleIndex}

// roleSet is which roles one process runs.
type roleSet struct {
	ingest, detect, respond, index bool
}

// roles returns the roles c selects; index runs when named, or by default
// when an Elasticsearch URL is set. c must be valid.
func (c *Config) roles() roleSet {
	if len(c.Roles) == 0 {
		return roleSet{ingest: true, detect: true, respond: true, index: len(c.ES) > 0}
	}
	var r roleSet
	for _, name := range c.Roles {
		*r.flag(name) = true
	}
	return r
}

// flag points at the field of role name (a throwaway for an unknown one;
// Validate refuses those).
func (r *roleSet) flag(name string) *bool {
	switch name {
	case RoleIngest:
		return &r.ingest
	case RoleDetect:
		return &r.detect
	case RoleRespond:
		return &r.respond
	case RoleIndex:
		return &r.index
	}
	return new(bool)
}

// has reports whether r includes role name.
func (r roleSet) has(name string) bool { return *r.flag(name) }

// names lists the roles of r, for logs and errors.
func (r roleSet) names() []string {
	var out []string
	for _, n := range allRoles {
		if r.has(n) {
			out = append(out, n)
		}
	}
	return out
}

// validateRoles checks Roles: known names, what each named role needs, and
// a NATS the other processes can reach when this one runs only some roles.
func (c *Config) validateRoles() error {
	if len(c.Roles) == 0 {
		return nil
	}
	for _, name := range c.Roles {
		switch name {
		case RoleIngest, RoleDetect, RoleRespond, RoleIndex:
		default:
			return fmt.Errorf("roles: unknown role %q (the roles are %s)", name, strings.Join(allRoles, ", "))
		}
	}
	r := c.roles()
	if r.index && len(c.ES) == 0 {
		return errors.New("roles: index needs es (the Elasticsearch URL to index into)")
	}
	if !(r.ingest && r.detect && r.respond) && c.NATS == "" && c.NATSListen == "" {
		return fmt.Errorf("roles: this process runs only %s, and the other roles cannot reach its embedded NATS: set nats (a server all of them share) or nats_listen (to serve the embedded one)",
			strings.Join(r.names(), ", "))
	}
	return nil
}
