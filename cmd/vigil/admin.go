package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-soc/vigil/event"
)

// adminClient talks to the admin API of a running vigil.
type adminClient struct {
	server, token, actor string
	http                 *http.Client
}

// adminFlags registers --server, --token-file and --json on fs.
func adminFlags(fs *flag.FlagSet) (client func() (*adminClient, error), jsonOut *bool) {
	server := fs.String("server", envOr("VIGIL_SERVER", "http://127.0.0.1:9464"), "admin API of the running vigil (env VIGIL_SERVER)")
	tokenFile := fs.String("token-file", os.Getenv("VIGIL_ADMIN_TOKEN_FILE"), "file holding the admin token (or env VIGIL_ADMIN_TOKEN)")
	jsonOut = fs.Bool("json", false, "print JSON instead of a table")
	return func() (*adminClient, error) {
		token := os.Getenv("VIGIL_ADMIN_TOKEN")
		if *tokenFile != "" {
			data, err := os.ReadFile(*tokenFile)
			if err != nil {
				return nil, fmt.Errorf("--token-file: %w", err)
			}
			token = strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0])
		}
		actor := "cli"
		if u, err := user.Current(); err == nil {
			actor = u.Username
		}
		if h, err := os.Hostname(); err == nil {
			actor += "@" + h
		}
		return &adminClient{server: strings.TrimRight(*server, "/"), token: token, actor: actor, http: &http.Client{Timeout: 30 * time.Second}}, nil
	}, jsonOut
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// apiError is the admin API's error body.
type apiError struct {
	Status int
	Msg    string `json:"error"`
	Field  string `json:"field"`
}

func (e *apiError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (HTTP %d)", e.Field, e.Msg, e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status)
}

// readAPIError turns an error answer into an *apiError.
func readAPIError(resp *http.Response) error {
	e := &apiError{Status: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(data, e) != nil || e.Msg == "" {
		e.Msg = strings.TrimSpace(string(data))
	}
	if resp.StatusCode == http.StatusUnauthorized {
		e.Msg += " — give the admin token with VIGIL_ADMIN_TOKEN or --token-file"
	}
	return e
}

// do sends a request and decodes the JSON answer into out.
func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Vigil-Actor", c.actor)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach vigil's admin API at %s: %w (is `vigil run` running? --server sets the address)", c.server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return readAPIError(resp)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// get sends a GET and decodes the JSON answer into out or, with jsonOut,
// prints it as the API sent it (printed is true then): --json shows every
// field under its API name, not the few the table reads.
func (c *adminClient) get(ctx context.Context, path string, jsonOut bool, out any) (printed bool, err error) {
	if !jsonOut {
		return false, c.do(ctx, "GET", path, nil, out)
	}
	var raw json.RawMessage
	if err := c.do(ctx, "GET", path, nil, &raw); err != nil {
		return false, err
	}
	return true, printJSON(raw)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(header string, rows [][]string) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Until(t).Round(time.Second)
	if d < 0 {
		return (-d).String() + " ago"
	}
	return "in " + d.String()
}

// auditBody is the answer of every change.
type auditBody struct {
	Audit map[string]any `json:"audit"`
}

func printAudit(a auditBody, jsonOut bool) error {
	if jsonOut {
		return printJSON(a)
	}
	if target, _ := a.Audit["target"].(string); target != "" {
		fmt.Printf("%s %s: %s", a.Audit["action"], target, a.Audit["result"])
	} else {
		fmt.Printf("%s: %s", a.Audit["action"], a.Audit["result"])
	}
	if exp, ok := a.Audit["expires"].(string); ok && exp != "" {
		fmt.Printf(" until %s", exp)
	}
	fmt.Println()
	return nil
}

func cmdBans(ctx context.Context, args []string) error {
	fs := newFlagSet("bans", "vigil bans [--json]\n\nLists active bans, soonest-expiring first.")
	c, _, jsonOut, err := adminCmd(fs, args, false)
	if c == nil || err != nil {
		return err
	}
	var out struct {
		Bans []struct {
			IP, Rule, Reason, Actor string
			Created, Expires        time.Time
		} `json:"bans"`
	}
	if printed, err := c.get(ctx, "/api/v1/bans", jsonOut, &out); printed || err != nil {
		return err
	}
	var rows [][]string
	for _, b := range out.Bans {
		rows = append(rows, []string{b.IP, b.Rule, b.Actor, b.Created.Format(time.RFC3339), ago(b.Expires), b.Reason})
	}
	return table("IP\tRULE\tBY\tSINCE\tEXPIRES\tREASON", rows)
}

func cmdBan(ctx context.Context, args []string) error {
	fs := newFlagSet("ban", "vigil ban IP --for 24h --reason TEXT [--force]\n\nBans an IP (or an IPv6 network in CIDR form) now.")
	dur := fs.Duration("for", 72*time.Hour, "how long")
	reason := fs.String("reason", "", "why (required; recorded in the audit trail)")
	force := fs.Bool("force", false, "ban even an allow-listed address")
	c, ip, jsonOut, err := adminCmd(fs, args, true)
	if c == nil || err != nil {
		return err
	}
	if *reason == "" {
		fs.Usage()
		return errUsage
	}
	if *dur < time.Second {
		return fmt.Errorf("--for %s: must be at least 1s", *dur)
	}
	var out auditBody
	if err := c.do(ctx, "POST", "/api/v1/bans", map[string]any{"ip": ip, "duration": dur.String(), "reason": *reason, "force": *force}, &out); err != nil {
		return err
	}
	return printAudit(out, jsonOut)
}

func cmdUnban(ctx context.Context, args []string) error {
	fs := newFlagSet("unban", "vigil unban IP\n\nRemoves a ban (the key and its index entry).")
	c, ip, jsonOut, err := adminCmd(fs, args, true)
	if c == nil || err != nil {
		return err
	}
	var out auditBody
	if err := c.do(ctx, "DELETE", "/api/v1/bans/"+url.PathEscape(ip), nil, &out); err != nil {
		return err
	}
	return printAudit(out, jsonOut)
}

func cmdLockdown(ctx context.Context, args []string) error {
	fs := newFlagSet("lockdown", "vigil lockdown on|off|status [--mode full|read-only] [--for 30m] --reason TEXT\n\nEmergency lockdown: full refuses every request, read-only refuses unsafe methods.")
	mode := fs.String("mode", "full", "full or read-only")
	dur := fs.Duration("for", 0, "lift it automatically after this `duration` (default: until vigil lockdown off)")
	reason := fs.String("reason", "", "why (required to turn it on)")
	c, sub, jsonOut, err := adminCmd(fs, args, false)
	if c == nil || err != nil {
		return err
	}
	switch sub {
	case "on":
		if *reason == "" {
			fs.Usage()
			return errUsage
		}
		body := map[string]any{"mode": *mode, "reason": *reason}
		if flagSet(fs, "for") {
			if *dur < time.Second {
				return fmt.Errorf("--for %s: must be at least 1s (leave it out for a lockdown until vigil lockdown off)", *dur)
			}
			body["duration"] = dur.String()
		}
		var out auditBody
		if err := c.do(ctx, "POST", "/api/v1/lockdown", body, &out); err != nil {
			return err
		}
		return printAudit(out, jsonOut)
	case "off":
		var out auditBody
		if err := c.do(ctx, "DELETE", "/api/v1/lockdown", nil, &out); err != nil {
			return err
		}
		return printAudit(out, jsonOut)
	case "status", "":
		var out struct {
			Lockdown *struct {
				Mode, Reason, By string
				Since, Until     time.Time
			} `json:"lockdown"`
		}
		if printed, err := c.get(ctx, "/api/v1/lockdown", jsonOut, &out); printed || err != nil {
			return err
		}
		if out.Lockdown == nil {
			fmt.Println("no lockdown")
			return nil
		}
		l := out.Lockdown
		return table("MODE\tBY\tSINCE\tUNTIL\tREASON", [][]string{{l.Mode, l.By, l.Since.Format(time.RFC3339), ago(l.Until), l.Reason}})
	}
	fs.Usage()
	return errUsage
}

func cmdRevoke(ctx context.Context, args []string) error {
	fs := newFlagSet("revoke", "vigil revoke --jti JTI | --user USER_ID | --all [--reason TEXT]\n\nRefuses one token (by its jti), every token of a user issued until now, or every token issued until now.")
	jti := fs.String("jti", "", "a token's jti claim")
	userID := fs.String("user", "", "a user id (simplejwt's user_id claim)")
	all := fs.Bool("all", false, "every token of every user")
	reason := fs.String("reason", "", "why (recorded in the audit trail)")
	c, _, jsonOut, err := adminCmd(fs, args, false)
	if c == nil || err != nil {
		return err
	}
	n := 0
	for _, set := range []bool{*jti != "", *userID != "", *all} {
		if set {
			n++
		}
	}
	if n != 1 {
		fs.Usage()
		return errUsage
	}
	body := map[string]any{"reason": *reason}
	switch {
	case *jti != "":
		body["jti"] = *jti
	case *userID != "":
		body["user"] = *userID
	default:
		body["all"] = true
	}
	var out auditBody
	if err := c.do(ctx, "POST", "/api/v1/revocations", body, &out); err != nil {
		return err
	}
	return printAudit(out, jsonOut)
}

type alertRow struct {
	ID, Rule, Severity, Key string
	At                      time.Time
	Count                   int
	Allowlisted             bool
}

func (a alertRow) row() []string {
	flag := ""
	if a.Allowlisted {
		flag = "allow-listed"
	}
	return []string{a.At.Format(time.RFC3339), a.Rule, a.Severity, a.Key, fmt.Sprint(a.Count), flag}
}

// alertWidths are the columns of alerts --follow: a time with its zone,
// a rule id, a severity, an IPv6 address, a count.
var alertWidths = []int{25, 28, 8, 39, 6}

// alertLine pads the columns of an alert row to alertWidths.
func alertLine(cols []string) string {
	var b strings.Builder
	for i, c := range cols {
		if i < len(alertWidths) {
			fmt.Fprintf(&b, "%-*s  ", alertWidths[i], c)
		} else {
			b.WriteString(c)
		}
	}
	return strings.TrimRight(b.String(), " ")
}

func cmdAudit(ctx context.Context, args []string) error {
	fs := newFlagSet("audit", "vigil audit [--limit N] [--json]\n\nThe audit trail (VIGIL_AUDIT), newest last: every response action, automatic or\nmanual, refusals included, with its result.")
	limit := fs.Int("limit", 50, "how many recent entries (1..1000)")
	c, _, jsonOut, err := adminCmd(fs, args, false)
	if c == nil || err != nil {
		return err
	}
	var out struct {
		Audit []event.Audit `json:"audit"`
	}
	if printed, err := c.get(ctx, fmt.Sprintf("/api/v1/audit?limit=%d", *limit), jsonOut, &out); printed || err != nil {
		return err
	}
	var rows [][]string
	for _, a := range out.Audit {
		rows = append(rows, []string{a.Time.Local().Format(time.DateTime), a.Action, cmp.Or(a.Target, "-"), a.Actor, a.Result, ago(a.Expires), a.Reason})
	}
	return table("AT\tACTION\tTARGET\tBY\tRESULT\tEXPIRES\tREASON", rows)
}

func cmdAlerts(ctx context.Context, args []string) error {
	fs := newFlagSet("alerts", "vigil alerts [--limit N] [--follow] [--json]\n\nRecent alerts, newest last; --follow keeps printing new ones.")
	limit := fs.Int("limit", 50, "how many recent alerts")
	follow := fs.Bool("follow", false, "keep printing alerts as they arrive (Ctrl-C to stop)")
	c, _, jsonOut, err := adminCmd(fs, args, false)
	if c == nil || err != nil {
		return err
	}
	var out struct {
		Alerts []json.RawMessage `json:"alerts"`
	}
	if err := c.do(ctx, "GET", fmt.Sprintf("/api/v1/alerts?limit=%d", *limit), nil, &out); err != nil {
		return err
	}
	header := "AT\tRULE\tSEVERITY\tKEY\tCOUNT\t"
	var rows [][]string
	for _, raw := range out.Alerts {
		if jsonOut {
			fmt.Println(string(raw))
			continue
		}
		var a alertRow
		_ = json.Unmarshal(raw, &a)
		rows = append(rows, a.row())
	}
	switch {
	case jsonOut:
	case *follow:
		// Rows come one by one: fixed widths keep them under the header.
		fmt.Println(alertLine(strings.Split(header, "\t")))
		for _, r := range rows {
			fmt.Println(alertLine(r))
		}
	default:
		if err := table(header, rows); err != nil {
			return err
		}
	}
	if !*follow {
		return nil
	}
	c.http.Timeout = 0
	req, _ := http.NewRequestWithContext(ctx, "GET", c.server+"/api/v1/alerts/follow", nil)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("following alerts at %s: %w", c.server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("following alerts: %w", readAPIError(resp))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if jsonOut {
			fmt.Println(sc.Text())
			continue
		}
		var a alertRow
		if json.Unmarshal(sc.Bytes(), &a) == nil && a.Rule != "" {
			fmt.Println(alertLine(a.row()))
		}
	}
	if ctx.Err() != nil || errors.Is(sc.Err(), context.Canceled) {
		return nil
	}
	return sc.Err()
}

func cmdExplain(ctx context.Context, args []string) error {
	fs := newFlagSet("explain", "vigil explain KEY [--json]\n\nWhat Vigil knows about an IP (or user name): which rules see it and their window counts, whether and why it is banned, its history.")
	c, key, jsonOut, err := adminCmd(fs, args, true)
	if c == nil || err != nil {
		return err
	}
	var out struct {
		Key         string `json:"key"`
		Allowlisted bool   `json:"allowlisted"`
		Ban         *struct {
			Rule, Reason, Actor string
			Created, Expires    time.Time
		} `json:"ban"`
		Offences int64 `json:"offences"`
		Rules    []struct {
			Rule, Window     string
			KeyField         string `json:"key_field"`
			Tracked          bool
			Count, Threshold int
			QuietUntil       time.Time `json:"quiet_until"`
			LastSeen         time.Time `json:"last_seen"`
		} `json:"rules"`
		RulesNote string            `json:"rules_note"`
		Alerts    []alertRow        `json:"alerts"`
		Audit     []json.RawMessage `json:"audit"`
	}
	if printed, err := c.get(ctx, "/api/v1/explain/"+url.PathEscape(key), jsonOut, &out); printed || err != nil {
		return err
	}
	fmt.Printf("%s\n", out.Key)
	switch {
	case out.Ban != nil:
		fmt.Printf("  banned by %s (%s) since %s, expires %s: %s\n", out.Ban.Rule, out.Ban.Actor, out.Ban.Created.Format(time.RFC3339), ago(out.Ban.Expires), out.Ban.Reason)
	case out.Allowlisted:
		fmt.Println("  not banned: in an allow-listed network (detections are recorded, never acted on)")
	default:
		fmt.Println("  not banned")
	}
	fmt.Printf("  bans in the history window: %d\n\n", out.Offences)
	var rows [][]string
	for _, r := range out.Rules {
		state := fmt.Sprintf("%d/%d in %s", r.Count, r.Threshold, r.Window)
		if !r.QuietUntil.IsZero() {
			state = "fired; quiet " + ago(r.QuietUntil)
		}
		seen := "-" // a window cleared when its rule fired
		if !r.LastSeen.IsZero() {
			seen = r.LastSeen.Format(time.RFC3339)
		}
		rows = append(rows, []string{r.Rule, r.KeyField, state, seen})
	}
	switch {
	case out.RulesNote != "":
		fmt.Printf("  %s\n", out.RulesNote)
	case len(rows) == 0:
		fmt.Println("  no rule holds a window for it now")
	default:
		if err := table("RULE\tKEY FIELD\tSTATE\tLAST SEEN", rows); err != nil {
			return err
		}
	}
	if len(out.Alerts) > 0 {
		fmt.Println()
		rows = rows[:0]
		for _, a := range out.Alerts {
			rows = append(rows, a.row())
		}
		return table("ALERT AT\tRULE\tSEVERITY\tKEY\tCOUNT\t", rows)
	}
	return nil
}

func cmdBreaker(ctx context.Context, args []string) error {
	fs := newFlagSet("breaker", "vigil breaker status|reset [--scope overall|rule:ID]\n\nThe circuit breakers that stop automatic bans when a rule bans too many keys.")
	scope := fs.String("scope", "", "reset only this breaker (default: all)")
	c, sub, jsonOut, err := adminCmd(fs, args, false)
	if c == nil || err != nil {
		return err
	}
	switch sub {
	case "reset":
		var out map[string]any
		if err := c.do(ctx, "POST", "/api/v1/breakers/reset", map[string]any{"scope": *scope}, &out); err != nil {
			return err
		}
		return printJSON(out)
	case "status", "":
		var out struct {
			Breakers map[string]struct {
				Open         bool
				Count, Limit int
				Blocked      int
				Since        time.Time
			} `json:"breakers"`
		}
		if printed, err := c.get(ctx, "/api/v1/breakers", jsonOut, &out); printed || err != nil {
			return err
		}
		var rows [][]string
		for _, scope := range sortedKeys(out.Breakers) {
			b := out.Breakers[scope]
			state, since := "closed", "-"
			if b.Open {
				state, since = "OPEN", b.Since.Format(time.RFC3339)
			}
			rows = append(rows, []string{scope, state, fmt.Sprintf("%d/%d", b.Count, b.Limit), fmt.Sprint(b.Blocked), since})
		}
		if len(rows) == 0 {
			fmt.Println("no automatic bans in the window: every breaker closed")
			return nil
		}
		return table("SCOPE\tSTATE\tBANS/LIMIT\tBLOCKED\tOPEN SINCE", rows)
	}
	fs.Usage()
	return errUsage
}

// adminCmd registers the admin flags on fs, parses args (after a leading
// positional argument, when there is one), and makes the client. With need,
// the positional argument is required.
func adminCmd(fs *flag.FlagSet, args []string, need bool) (c *adminClient, arg string, jsonOut bool, err error) {
	client, js := adminFlags(fs)
	arg, rest := firstArg(args)
	if err := parse(fs, rest); err != nil {
		return nil, "", false, ignoreHelp(err)
	}
	if need && arg == "" {
		fs.Usage()
		return nil, "", false, errUsage
	}
	c, err = client()
	return c, arg, *js, err
}

// firstArg splits off a leading positional argument, so flags may follow it
// ("vigil ban 1.2.3.4 --for 1h").
func firstArg(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
