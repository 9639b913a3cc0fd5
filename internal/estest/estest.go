// Package estest gives tests a real Elasticsearch. It is for tests only:
// nothing outside _test.go files may import it.
//
// Start uses the cluster named by the environment variable VIGIL_TEST_ES_URL
// when it is set. Otherwise it starts one single-node Elasticsearch 8.x per
// test binary, shared by every test of the package: Elastic's integ-test
// distribution from Maven Central, fetched and unpacked once by
// scripts/elasticsearch.sh into a cache (~/.cache/vigil, /var/cache/vigil
// for root, or $VIGIL_CACHE), run on the machine's JDK (>= 17) on a free
// loopback port with a 512 MiB heap, security off, data in a temporary
// directory. Starting it takes 8-45 s on two cores, which is why the node is
// shared. Tests keep apart by writing under their own names
// (Server.Namespace).
//
// The node lives until Shutdown, which a package's TestMain calls after
// m.Run (see Main); if the test binary dies first, the kernel kills the
// node's launcher and the server exits with it.
//
// Tests of the same package run one after another unless they call
// t.Parallel, so a test may Stop and Restart the shared node to simulate an
// outage as long as it does not run in parallel with others.
package estest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvURL is the environment variable that names an external Elasticsearch to
// use instead of starting one, e.g. http://127.0.0.1:9200. It must not
// require authentication.
const EnvURL = "VIGIL_TEST_ES_URL"

// startTimeout bounds how long starting the node may take.
const startTimeout = 3 * time.Minute

// fix is appended to every failure to start: how to make it work.
const fix = "Elasticsearch tests need a JDK >= 17 (apt-get install -y openjdk-17-jre-headless, or ES_JAVA_HOME), " +
	"Maven and unzip (apt-get install -y maven unzip) and Maven Central, or " + EnvURL + "=http://host:9200 naming a running Elasticsearch 8 without security"

// Server is an Elasticsearch node tests share.
type Server struct {
	// URL is the node's HTTP address, such as http://127.0.0.1:41234.
	URL string

	external bool // URL came from EnvURL: Stop and Restart are refused
	home     string
	javaHome string
	dir      string // node state: config, data, logs
	port     int    // fixed after the first start, so a restart keeps the URL

	mu   sync.Mutex
	proc *process // nil while stopped; guarded by mu
}

// process is one run of the node.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the launcher has exited
}

var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Start returns the Elasticsearch the tests of this binary share, starting
// it on first use. It fails the test, saying how to fix it, when there is
// none to be had.
func Start(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() { shared.srv, shared.err = start() })
	if shared.err != nil {
		t.Fatalf("estest: %v\n%s", shared.err, fix)
	}
	return shared.srv
}

// Main runs the tests and then stops the shared node, for a package's
// TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(estest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	Shutdown()
	return code
}

// Shutdown stops the shared node if this binary started one, and removes its
// data. It is safe to call when no node was started.
func Shutdown() {
	s := shared.srv
	if s == nil || s.external {
		return
	}
	s.stop()
	_ = os.RemoveAll(s.dir)
}

// start finds or starts the node.
func start() (*Server, error) {
	if u := os.Getenv(EnvURL); u != "" {
		s := &Server{URL: strings.TrimRight(u, "/"), external: true}
		if err := waitHealthy(s.URL, 30*time.Second, nil); err != nil {
			return nil, fmt.Errorf("Elasticsearch at %s=%q is not healthy: %w", EnvURL, u, err)
		}
		return s, nil
	}
	script, err := scriptPath()
	if err != nil {
		return nil, err
	}
	s := &Server{}
	if s.home, err = runScript(script, "path"); err != nil {
		return nil, err
	}
	if s.javaHome, err = runScript(script, "java-home"); err != nil {
		return nil, err
	}
	removeStale()
	if s.dir, err = os.MkdirTemp("", "vigil-estest-"); err != nil {
		return nil, fmt.Errorf("creating the node's directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if err := s.prepare(); err != nil {
		_ = os.RemoveAll(s.dir)
		return nil, err
	}
	if err := s.start(); err != nil {
		_ = os.RemoveAll(s.dir)
		return nil, err
	}
	s.URL = "http://127.0.0.1:" + strconv.Itoa(s.port)
	return s, nil
}

// ownerFile, in a node's directory, holds the pid of the test binary that
// started the node.
const ownerFile = "owner.pid"

// removeStale removes the directories of nodes whose test binary died
// without cleaning up (its node died with it).
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "vigil-estest-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// scriptPath locates scripts/elasticsearch.sh from this source file.
func scriptPath() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the estest source file to find scripts/elasticsearch.sh")
	}
	p := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "elasticsearch.sh")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("finding scripts/elasticsearch.sh: %w", err)
	}
	return p, nil
}

// runScript runs the script with one command and returns its output's last
// line.
func runScript(script, command string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(script, command)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", script, command, err, strings.TrimSpace(stderr.String()))
	}
	out := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	if out == "" {
		return "", fmt.Errorf("%s %s printed nothing: %s", script, command, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// prepare lays out the node's directory: its own copy of the configuration
// (the node writes a keystore there), data, logs and temporary files, owned
// by the user the node runs as.
func (s *Server) prepare() error {
	for _, d := range []string{"data", "logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.CopyFS(filepath.Join(s.dir, "config"), os.DirFS(filepath.Join(s.home, "config"))); err != nil {
		return fmt.Errorf("copying the node's configuration: %w", err)
	}
	return chownForNode(s.dir)
}

// start runs the node and waits until it is healthy. The first start takes
// any free port; later ones reuse it.
func (s *Server) start() error {
	portsFile := filepath.Join(s.dir, "logs", "http.ports")
	_ = os.Remove(portsFile)
	console, err := os.OpenFile(filepath.Join(s.dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer console.Close()
	cmd := exec.Command(filepath.Join(s.home, "bin", "elasticsearch"),
		"-E", "cluster.name=vigil-test",
		"-E", "node.name=vigil-test",
		"-E", "discovery.type=single-node",
		"-E", "network.host=127.0.0.1",
		"-E", "http.port="+strconv.Itoa(s.port),
		"-E", "transport.port=0",
		"-E", "node.portsfile=true",
		"-E", "path.data="+filepath.Join(s.dir, "data"),
		"-E", "path.logs="+filepath.Join(s.dir, "logs"),
		"-E", "xpack.security.enabled=false",
		"-E", "cluster.routing.allocation.disk.threshold_enabled=false",
		"-E", "action.destructive_requires_name=false",
	)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(),
		"ES_JAVA_HOME="+s.javaHome,
		"ES_PATH_CONF="+filepath.Join(s.dir, "config"),
		"ES_TMPDIR="+filepath.Join(s.dir, "tmp"),
		// C1 only: the node starts in ~10 s instead of ~45 s on two
		// cores, and tests index little.
		"ES_JAVA_OPTS=-Xms512m -Xmx512m -XX:TieredStopAtLevel=1",
	)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr, err = sysProcAttr()
	if err != nil {
		return err
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", cmd.Path, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()

	deadline := time.Now().Add(startTimeout)
	for s.port == 0 {
		if b, err := os.ReadFile(portsFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
			if i := strings.LastIndexByte(line, ':'); i >= 0 {
				s.port, _ = strconv.Atoi(line[i+1:])
			}
			break
		}
		select {
		case <-p.done:
			return fmt.Errorf("Elasticsearch exited while starting: %s", s.consoleTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return fmt.Errorf("Elasticsearch wrote no HTTP port in %s: %s", startTimeout, s.consoleTail())
		}
	}
	url := "http://127.0.0.1:" + strconv.Itoa(s.port)
	if err := waitHealthy(url, time.Until(deadline), p.done); err != nil {
		p.stop()
		return fmt.Errorf("Elasticsearch at %s: %w: %s", url, err, s.consoleTail())
	}
	fmt.Fprintf(os.Stderr, "estest: Elasticsearch at %s started in %s\n", url, time.Since(began).Round(100*time.Millisecond))
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// consoleTail returns the end of the node's console output.
func (s *Server) consoleTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "console.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop stops the self-started node, keeping its data, to test an outage. It
// fails the test on a node given by VIGIL_TEST_ES_URL. The node is started
// again when the test ends if the test did not Restart it.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.external {
		t.Fatalf("estest: outage tests need a self-started node: unset %s", EnvURL)
	}
	s.stop()
	t.Cleanup(func() {
		s.mu.Lock()
		stopped := s.proc == nil
		s.mu.Unlock()
		if stopped {
			if err := s.start(); err != nil {
				t.Errorf("estest: restarting Elasticsearch after the test: %v", err)
			}
		}
	})
}

// Restart starts a node Stop stopped, on the same port and data, and waits
// until it is healthy.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.external {
		t.Fatalf("estest: outage tests need a self-started node: unset %s", EnvURL)
	}
	s.mu.Lock()
	running := s.proc != nil
	s.mu.Unlock()
	if running {
		return
	}
	if err := s.start(); err != nil {
		t.Fatalf("estest: restarting Elasticsearch: %v", err)
	}
}

// stop ends the node if it runs.
func (s *Server) stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// stop signals the node's process group, politely first, and waits for the
// launcher to exit and the group to be gone.
func (p *process) stop() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// The server JVM is a child of the launcher: wait for it too, so a
	// restart does not meet its lock on the data directory.
	for range 200 {
		if syscall.Kill(-pgid, 0) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// waitHealthy waits until the cluster at url is at least yellow, or done is
// closed (the process exited).
func waitHealthy(url string, timeout time.Duration, done <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 5 * time.Second}
	var last error
	for {
		resp, err := client.Get(url + "/_cluster/health?wait_for_status=yellow&timeout=2s")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("cluster health: %s: %s", resp.Status, body)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %s: %w", timeout, last)
		}
		select {
		case <-done:
			return errors.New("the node exited")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Namespace returns a namespace unique to the test, such as
// "t3f9c2a71b0d4": lower case, no '-', fit for index and data stream names
// (logs-vigil.access-<namespace>). Tests sharing the node keep to theirs.
func (s *Server) Namespace(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("estest: reading random bytes: %v", err)
	}
	return "t" + hex.EncodeToString(b[:])
}

// Request sends one request to the node and returns the status and body;
// body, when not nil, is sent as JSON ([]byte and string as they are). It
// fails the test when the node cannot be reached.
func (s *Server) Request(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("estest: encoding the request body: %v", err)
		}
		r = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, r)
	if err != nil {
		t.Fatalf("estest: %s %s: %v", method, path, err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("estest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("estest: reading the answer to %s %s: %v", method, path, err)
	}
	return resp.StatusCode, data
}
