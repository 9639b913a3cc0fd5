package app

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"
)

// k8sObject is the part of a Kubernetes object the manifest test reads.
type k8sObject struct {
	Kind     string
	Metadata struct{ Name string }
	Data     map[string]string
	Spec     struct {
		Selector any
		Template struct {
			Metadata struct{ Labels map[string]string }
			Spec     struct {
				Containers []struct {
					Name         string
					Args         []string
					Env          []struct{ Name, Value string }
					VolumeMounts []struct{ Name string } `yaml:"volumeMounts"`
				}
				Volumes []struct{ Name string }
			}
		}
	}
}

func readManifest(t *testing.T, path string) []k8sObject {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []k8sObject
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, o)
	}
}

// The Kubernetes manifests hold together: every Vigil container's
// configuration (the ConfigMap, its environment, its flags) validates, its
// volumes exist, the public Service reaches an ingest process and the admin
// Service the respond process, and the NATS configuration is one a real
// nats-server accepts.
func TestKubernetesManifests(t *testing.T) {
	files, _ := filepath.Glob("../deploy/kubernetes/*.yaml")
	if len(files) < 2 {
		t.Fatalf("manifests: %v", files)
	}
	t.Setenv("POD_NAME", "nats-0")
	t.Setenv("NATS_PASSWORD", "pw")
	for _, file := range files {
		objs := readManifest(t, file)
		byName := map[string]k8sObject{}
		for _, o := range objs {
			byName[o.Kind+"/"+o.Metadata.Name] = o
		}
		cm, ok := byName["ConfigMap/vigil"]
		if !ok {
			t.Fatalf("%s: no ConfigMap vigil", file)
		}
		cfgFile := filepath.Join(t.TempDir(), "vigil.yaml")
		if err := os.WriteFile(cfgFile, []byte(cm.Data["vigil.yaml"]), 0o644); err != nil {
			t.Fatal(err)
		}
		rolesOf := map[string]roleSet{} // label app/role -> roles
		for _, o := range objs {
			if o.Kind != "Deployment" {
				continue
			}
			pod := o.Spec.Template.Spec
			vols := map[string]bool{}
			for _, v := range pod.Volumes {
				vols[v.Name] = true
			}
			for _, c := range pod.Containers {
				for _, m := range c.VolumeMounts {
					if !vols[m.Name] {
						t.Errorf("%s: %s mounts volume %q, which the pod lacks", file, o.Metadata.Name, m.Name)
					}
				}
				if c.Name != "vigil" {
					continue
				}
				cfg := Default()
				if len(c.Args) < 3 || c.Args[0] != "run" || c.Args[1] != "--config" || c.Args[2] != "/etc/vigil/vigil.yaml" {
					t.Fatalf("%s: %s args %v", file, o.Metadata.Name, c.Args)
				}
				if err := cfg.LoadFile(cfgFile); err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				env := map[string]string{}
				for _, e := range c.Env {
					env[e.Name] = strings.ReplaceAll(e.Value, "$(NATS_PASSWORD)", "pw")
				}
				if err := cfg.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
					t.Fatalf("%s: %s: %v", file, o.Metadata.Name, err)
				}
				for rest := c.Args[3:]; len(rest) > 0; rest = rest[2:] {
					if len(rest) < 2 || rest[0] != "--roles" {
						t.Fatalf("%s: %s: unexpected args %v", file, o.Metadata.Name, rest)
					}
					cfg.Roles = nil
					if err := cfg.Set("roles", rest[1]); err != nil {
						t.Fatal(err)
					}
				}
				if err := cfg.Validate(); err != nil {
					t.Errorf("%s: %s: %v", file, o.Metadata.Name, err)
				}
				l := o.Spec.Template.Metadata.Labels
				rolesOf[l["app"]+"/"+l["role"]] = cfg.roles()
			}
		}
		for svc, want := range map[string]func(roleSet) bool{
			"Service/vigil":       func(r roleSet) bool { return r.ingest },
			"Service/vigil-admin": func(r roleSet) bool { return r.respond },
		} {
			sel, _ := byName[svc].Spec.Selector.(map[string]any)
			r, ok := rolesOf[asString(sel["app"])+"/"+asString(sel["role"])]
			if !ok || !want(r) {
				t.Errorf("%s: %s selects %v, which runs %v", file, svc, sel, r.names())
			}
		}
		if nc, ok := byName["ConfigMap/nats"]; ok {
			checkNATSConf(t, file+" ConfigMap nats", nc.Data["nats.conf"], 3)
		}
	}
	t.Setenv("VIGIL_NATS_PASSWORD", "pw")
	conf, err := os.ReadFile("../deploy/nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	checkNATSConf(t, "deploy/nats/nats.conf", string(conf), 3)
}

func asString(v any) string { s, _ := v.(string); return s }

// checkNATSConf has nats-server read conf: JetStream on, a cluster of
// routes routes, and a user vigil.
func checkNATSConf(t *testing.T, name, conf string, routes int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("%s: nats-server refuses it: %v", name, err)
	}
	if !opts.JetStream || len(opts.Routes) != routes || !slices.ContainsFunc(opts.Users, func(u *server.User) bool { return u.Username == "vigil" && u.Password == "pw" }) {
		t.Errorf("%s: jetstream %v, %d routes, users %v", name, opts.JetStream, len(opts.Routes), opts.Users)
	}
}

// The systemd units pass `systemd-analyze verify` (with ExecStart pointed at
// /bin/true, since vigil is not installed here), and an instance of the
// per-role template, given a NATS in the environment as its header says,
// runs a configuration that validates.
func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: apt-get install systemd")
	}
	dir := t.TempDir()
	for unit, instance := range map[string]string{"vigil.service": "vigil.service", "vigil@.service": "vigil@detect.service"} {
		data, err := os.ReadFile(filepath.Join("../deploy/systemd", unit))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "/usr/local/bin/vigil", "/bin/true")
		if err := os.WriteFile(filepath.Join(dir, unit), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(analyze, "verify", "./"+instance)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", instance, err, out)
		}
	}

	data, err := os.ReadFile("../deploy/systemd/vigil@.service")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VIGIL_NATS": "nats://nats-1:4222"}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Environment="); ok {
			for _, kv := range strings.Fields(strings.ReplaceAll(rest, "%i", RoleDetect)) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
	}
	if env["VIGIL_ROLES"] != RoleDetect {
		t.Fatalf("the template sets no VIGIL_ROLES from its instance: %v", env)
	}
	cfg := Default()
	if err := cfg.LoadFile("../deploy/systemd/vigil.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("vigil@detect with vigil.yaml and a NATS: %v", err)
	}
	if r := cfg.roles(); !r.detect || r.ingest || r.respond || cfg.DataDir != "/var/lib/vigil/detect" {
		t.Errorf("vigil@detect runs %v in %s", r.names(), cfg.DataDir)
	}
}
