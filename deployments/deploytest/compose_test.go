package deploytest

import (
	"context"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// stackEnv is what a user gives the stacks in Portainer (see
// stack.env.example and `terraform output portainer_env`).
func stackEnv() map[string]string {
	return map[string]string{
		"AWS_REGION":          "eu-central-1",
		"S3_BUCKET":           "my-hevc-bucket",
		"WORK_QUEUE_URL":      "https://sqs.eu-central-1.amazonaws.com/123456789012/hevc-encoder-work",
		"RESULTS_QUEUE_URL":   "https://sqs.eu-central-1.amazonaws.com/123456789012/hevc-encoder-results",
		"ECS_CLUSTER":         "hevc-encoder",
		"ECS_TASK_DEFINITION": "hevc-encoder-hevc-processor",
		"ECS_SUBNETS":         "subnet-0aaaaaaaaaaaaaaaa,subnet-0bbbbbbbbbbbbbbbb",
		"ECS_SECURITY_GROUPS": "sg-0123456789abcdef0",
		"NC_URL":              "https://cloud.example.com",
		"NC_USERS":            "alice",
		"LIBRARY_PATH":        "/photos",
		"IMAGE_REGISTRY":      "registry.invalid/hevc-encoder",
		"IMAGE_TAG":           "1.0.0",
	}
}

func loadStack(t testing.TB, file string, env map[string]string) (*types.Project, error) {
	t.Helper()
	p := filepath.Join(repoRoot(t), "deployments", "portainer", file)
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		// Portainer runs compose from its own data directory, not this one.
		WorkingDir:  t.TempDir(),
		ConfigFiles: []types.ConfigFile{{Filename: p}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName(strings.TrimSuffix(file, ".yml"), true)
	})
}

// stackFiles maps each stack file to the services it must contain.
var stackFiles = map[string][]string{
	"hevc-encoder.yml":   {"nextcloud-syncer", "result-downloader", "s3-uploader"},
	"sqs-dispatcher.yml": {"sqs-dispatcher"},
}

var secretish = regexp.MustCompile(`(PASS|PASSWORD|SECRET|TOKEN|ACCESS_KEY|API_KEY|SESSION)`)

func TestPortainerStacks(t *testing.T) {
	logging := loggingVars(t)
	for file, want := range stackFiles {
		t.Run(file, func(t *testing.T) {
			proj, err := loadStack(t, file, stackEnv())
			if err != nil {
				t.Fatalf("compose-spec loader: %v", err)
			}
			var names []string
			for n := range proj.Services {
				names = append(names, n)
			}
			slices.Sort(names)
			w := slices.Clone(want)
			slices.Sort(w)
			if !slices.Equal(names, w) {
				t.Fatalf("services %v, want %v", names, w)
			}
			for name, svc := range proj.Services {
				// The image is the service's own, from the configured
				// registry and tag.
				if want := "registry.invalid/hevc-encoder/" + name + ":1.0.0"; svc.Image != want {
					t.Errorf("%s: image %s, want %s", name, svc.Image, want)
				}
				// Hardening.
				uid, _, _ := strings.Cut(svc.User, ":")
				if uid == "" || uid == "0" || uid == "root" {
					t.Errorf("%s: runs as %q; set a non-root user", name, svc.User)
				}
				if !svc.ReadOnly || !slices.Contains(svc.CapDrop, "ALL") || !slices.Contains(svc.SecurityOpt, "no-new-privileges:true") {
					t.Errorf("%s: want read_only, cap_drop ALL and no-new-privileges", name)
				}
				if svc.Logging == nil || svc.Logging.Options["max-size"] == "" {
					t.Errorf("%s: logs must be rotated (logging max-size)", name)
				}
				// Long-running services declare the health check that asks
				// their /healthz (so Portainer shows unhealthy ones); nothing
				// is published by default.
				if longRunning[name] {
					hc := svc.HealthCheck
					want := []string{"CMD", "/usr/local/bin/" + name, "healthcheck"}
					if hc == nil || hc.Disable || !slices.Equal(hc.Test, want) || hc.Interval == nil || hc.Retries == nil {
						t.Errorf("%s: healthcheck %+v, want test %q with an interval and retries", name, hc, want)
					}
				}
				if len(svc.Ports) > 0 {
					t.Errorf("%s: publishes ports %v; the stack publishes nothing by default", name, svc.Ports)
				}

				// Every variable is one the service (or, for templates of
				// the one-shot jobs, the job's service) reads.
				readers := []string{name}
				for _, j := range portainerJobs(t) {
					if j.template == name && !slices.Contains(readers, j.service) {
						readers = append(readers, j.service)
					}
				}
				known := map[string]bool{}
				required := map[string]bool{}
				for _, r := range readers {
					if !serviceHasMain(t, r) {
						continue
					}
					for k, v := range serviceVars(t, r) {
						known[k] = true
						if r == name && v.Required {
							required[k] = true
						}
					}
				}
				mounted := map[string]bool{}
				for _, s := range svc.Secrets {
					target := s.Target
					if target == "" {
						target = "/run/secrets/" + s.Source
					}
					mounted[target] = true
					if _, ok := proj.Secrets[s.Source]; !ok {
						t.Errorf("%s: secret %s is not declared", name, s.Source)
					}
				}
				for k, v := range svc.Environment {
					val := ""
					if v != nil {
						val = *v
					}
					base := strings.TrimSuffix(k, "_FILE")
					switch {
					case strings.HasSuffix(k, "_FILE") || k == "AWS_SHARED_CREDENTIALS_FILE":
						if !strings.HasPrefix(val, "/run/secrets/") || !mounted[val] {
							t.Errorf("%s: %s=%s must name a secret mounted in the service", name, k, val)
						}
					case secretish.MatchString(k):
						t.Errorf("%s: %s is a secret in plain environment; use %s_FILE and a secret", name, k, k)
					}
					isKnown := known[k] || known[base] || logging[k] || awsSDKVars[k] ||
						(strings.HasPrefix(k, "NC_PASS_") && strings.HasSuffix(k, "_FILE") && known["NC_USERS"])
					if len(known) > 0 && !isKnown {
						t.Errorf("%s: sets %s, which %v do not read", name, k, readers)
					}
					if k == "LIBRARY_ROOT" {
						ok := false
						for _, vol := range svc.Volumes {
							if vol.Type == types.VolumeTypeBind && path.Clean(vol.Target) == path.Clean(val) && vol.Source == "/photos" {
								ok = true
							}
						}
						if !ok {
							t.Errorf("%s: LIBRARY_ROOT=%s is not the library bind mount", name, val)
						}
					}
				}
				for r := range required {
					if _, ok := svc.Environment[r]; !ok {
						t.Errorf("%s: requires %s, which the stack does not set", name, r)
					}
				}
			}
			// Secrets are files on the host, by absolute path.
			for n, s := range proj.Secrets {
				if !filepath.IsAbs(s.File) || s.Environment != "" || s.Content != "" {
					t.Errorf("secret %s must be a file with an absolute path on the Docker host, got %+v", n, s)
				}
			}
		})
	}
}

// Without the required variables the stack does not deploy: no service may
// start half-configured.
func TestPortainerStacksRequireConfiguration(t *testing.T) {
	for _, missing := range []string{"LIBRARY_PATH", "S3_BUCKET", "WORK_QUEUE_URL", "RESULTS_QUEUE_URL", "NC_URL", "AWS_REGION"} {
		env := stackEnv()
		delete(env, missing)
		_, err := loadStack(t, "hevc-encoder.yml", env)
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("hevc-encoder.yml without %s: err = %v, want one naming %s", missing, err, missing)
		}
	}
}
