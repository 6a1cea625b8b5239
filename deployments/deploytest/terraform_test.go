package deploytest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// goStringConsts returns the string constants declared in a Go file.
func goStringConsts(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i < len(vs.Values) {
					if bl, ok := vs.Values[i].(*ast.BasicLit); ok && bl.Kind == token.STRING {
						v, _ := strconv.Unquote(bl.Value)
						out[n.Name] = v
					}
				}
			}
		}
	}
	return out
}

// jobEnvKeys returns the keys of the map returned by launch.Job.Env: the
// variables the dispatcher gives each processor task.
func jobEnvKeys(t testing.TB) []string {
	t.Helper()
	path := filepath.Join(repoRoot(t), "pkg", "launch", "launch.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	ast.Inspect(f, func(n ast.Node) bool {
		fd, ok := n.(*ast.FuncDecl)
		if !ok || fd.Name.Name != "Env" || fd.Recv == nil {
			return true
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if kv, ok := n.(*ast.KeyValueExpr); ok {
				if bl, ok := kv.Key.(*ast.BasicLit); ok && bl.Kind == token.STRING {
					k, _ := strconv.Unquote(bl.Value)
					keys = append(keys, k)
				}
			}
			return true
		})
		return false
	})
	if len(keys) == 0 {
		t.Fatalf("no keys found in launch.Job.Env (%s)", path)
	}
	return keys
}

// envKeys returns the variable names of a task environment local: the keys
// of every object literal in it (merge({...}, {for ... in {...}})).
func (c *tfConfig) envKeys(local string) []string {
	seen := map[string]bool{}
	for _, o := range allObjects(c.local(local)) {
		items, _ := objectItems(o)
		for k := range items {
			seen[k] = true
		}
	}
	return sortedSet(seen)
}

func TestTerraformVariables(t *testing.T) {
	c := loadTerraform(t)
	vars := c.find("variable")
	if len(vars) < 20 {
		t.Fatalf("only %d variables", len(vars))
	}
	declared := map[string]bool{}
	validated := 0
	for _, v := range vars {
		name := v.Labels[0]
		declared[name] = true
		d := attr(v.Body, "description")
		if d == nil {
			t.Errorf("variable %q has no description", name)
		} else if lit, ok := literal(d.Expr); !ok || lit.Type() != cty.String || len(strings.TrimSpace(lit.AsString())) < 10 {
			t.Errorf("variable %q: the description must be a real sentence, got %s", name, c.text(d.Expr))
		}
		if attr(v.Body, "type") == nil {
			t.Errorf("variable %q has no type", name)
		}
		for _, val := range nested(v.Body, "validation") {
			validated++
			if attr(val.Body, "condition") == nil || attr(val.Body, "error_message") == nil {
				t.Errorf("variable %q: validation without condition or error_message", name)
			}
		}
	}
	if validated < len(vars)/2 {
		t.Errorf("only %d of %d variables are validated", validated, len(vars))
	}
	used := c.traversalsTo("var")
	for _, n := range sortedSet(declared) {
		if !used[n] {
			t.Errorf("variable %q is declared but never used", n)
		}
	}
	for _, n := range sortedSet(used) {
		if !declared[n] {
			t.Errorf("var.%s is used but not declared", n)
		}
	}
}

func TestTerraformBucketIsPrivateAndEncrypted(t *testing.T) {
	c := loadTerraform(t)
	pab := c.one("resource", "aws_s3_bucket_public_access_block", "this")
	for _, a := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
		if got := c.attrText(pab.Body, a); got != "true" {
			t.Errorf("public access block: %s = %q, want true", a, got)
		}
	}
	own := c.one("resource", "aws_s3_bucket_ownership_controls", "this")
	rules := nested(own.Body, "rule")
	if len(rules) != 1 || c.attrText(rules[0].Body, "object_ownership") != `"BucketOwnerEnforced"` {
		t.Errorf("object ownership must be BucketOwnerEnforced")
	}
	sse := c.text(c.one("resource", "aws_s3_bucket_server_side_encryption_configuration", "this").Body)
	for _, want := range []string{`"aws:kms"`, `"AES256"`, "bucket_key_enabled", "var.s3_encryption", "var.kms_key_arn"} {
		if !strings.Contains(sse, want) {
			t.Errorf("server-side encryption configuration lacks %s", want)
		}
	}
	if got := c.variableDefault("s3_encryption").AsString(); got != "SSE-KMS" {
		t.Errorf("s3_encryption defaults to %q, want SSE-KMS", got)
	}

	// TLS only: the bucket policy denies every request without TLS.
	pol := c.one("resource", "aws_s3_bucket_policy", "this")
	if got := c.attrText(pol.Body, "policy"); got != "local.bucket_policy" {
		t.Fatalf("bucket policy is %s, want local.bucket_policy", got)
	}
	deny, _ := objectItems(c.local("deny_insecure_transport"))
	if v, ok := literal(deny["Effect"]); !ok || v.AsString() != "Deny" {
		t.Errorf("deny_insecure_transport: Effect must be Deny")
	}
	if v, ok := literal(deny["Principal"]); !ok || v.AsString() != "*" {
		t.Errorf("deny_insecure_transport: Principal must be \"*\"")
	}
	cond, ok := literal(deny["Condition"])
	if !ok || !cond.Type().IsObjectType() || !cond.Type().HasAttribute("Bool") ||
		cond.GetAttr("Bool").GetAttr("aws:SecureTransport").AsString() != "false" {
		t.Errorf("deny_insecure_transport: Condition must be Bool aws:SecureTransport = \"false\", got %s", c.text(deny["Condition"]))
	}
	bp := c.text(c.local("bucket_policy"))
	for _, want := range []string{"merge(local.deny_insecure_transport", `Action   = "s3:*"`, `"${local.bucket_arn}/*"`} {
		if !strings.Contains(bp, want) {
			t.Errorf("bucket_policy lacks %s", want)
		}
	}
	if c.attrText(c.one("resource", "aws_s3_bucket", "this").Body, "force_destroy") != "var.bucket_force_destroy" ||
		c.variableDefault("bucket_force_destroy").True() {
		t.Errorf("force_destroy must be a variable that defaults to false")
	}
}

func TestTerraformLifecycleDefaults(t *testing.T) {
	c := loadTerraform(t)
	lc := c.one("resource", "aws_s3_bucket_lifecycle_configuration", "this")
	want := map[string]int64{"local.todo_prefix": 7, "local.done_prefix": 14, "local.failed_prefix": 30}
	got := map[string]int64{}
	abort := int64(-1)
	for _, r := range nested(lc.Body, "rule") {
		if c.attrText(r.Body, "status") != `"Enabled"` {
			t.Errorf("lifecycle rule %s is not enabled", c.attrText(r.Body, "id"))
		}
		filters := nested(r.Body, "filter")
		if len(filters) != 1 {
			t.Errorf("lifecycle rule %s needs exactly one filter block", c.attrText(r.Body, "id"))
			continue
		}
		prefix := c.attrText(filters[0].Body, "prefix")
		for _, e := range nested(r.Body, "expiration") {
			v, ok := refVar(c.attrText(e.Body, "days"))
			if !ok {
				t.Errorf("rule %s: expiration days must be a variable", c.attrText(r.Body, "id"))
				continue
			}
			got[prefix] = c.variableNumber(v)
		}
		for _, a := range nested(r.Body, "abort_incomplete_multipart_upload") {
			if prefix != "" {
				t.Errorf("the multipart abort rule must cover the whole bucket, not %s", prefix)
			}
			v, ok := refVar(c.attrText(a.Body, "days_after_initiation"))
			if !ok {
				t.Fatalf("abort_incomplete_multipart_upload days must be a variable")
			}
			abort = c.variableNumber(v)
		}
	}
	for p, d := range want {
		if got[p] != d {
			t.Errorf("expiration of %s defaults to %d days, want %d", p, got[p], d)
		}
	}
	if abort != 1 {
		t.Errorf("incomplete multipart uploads are aborted after %d days by default, want 1", abort)
	}
}

// The bucket layout in Terraform (lifecycle prefixes, notification filters,
// IAM resources) is the one pkg/library produces.
func TestTerraformKeyLayoutMatchesLibrary(t *testing.T) {
	c := loadTerraform(t)
	lib := goStringConsts(t, filepath.Join(repoRoot(t), "pkg", "library", "keys.go"))
	for local, konst := range map[string]string{
		"todo_prefix": "TodoPrefix", "done_prefix": "DonePrefix", "failed_prefix": "FailedPrefix", "hevc_suffix": "HevcSuffix",
	} {
		want, ok := lib[konst]
		if !ok {
			t.Errorf("pkg/library has no constant %s", konst)
			continue
		}
		if got := c.localString(local); got != want {
			t.Errorf("local.%s = %q but library.%s = %q", local, got, konst, want)
		}
	}

	// Notifications: TODO/ + each spelling of .mp4 -> work queue; DONE/ +
	// -hevc.mp4 -> results queue; nothing else.
	n := c.one("resource", "aws_s3_bucket_notification", "this")
	type rule struct{ prefix, suffix, queue string }
	var rules []rule
	for _, q := range nested(n.Body, "queue") {
		rules = append(rules, rule{c.attrText(q.Body, "filter_prefix"), c.attrText(q.Body, "filter_suffix"), c.attrText(q.Body, "queue_arn")})
		if ev := c.attrText(q.Body, "events"); ev != `["s3:ObjectCreated:*"]` {
			t.Errorf("notification events = %s, want ObjectCreated only", ev)
		}
	}
	var suffixes []string
	for _, d := range nested(n.Body, "dynamic") {
		if d.Labels[0] != "queue" {
			continue
		}
		if fe := c.attrText(d.Body, "for_each"); fe != "toset(var.work_suffixes)" {
			t.Errorf("dynamic queue iterates %s, want toset(var.work_suffixes)", fe)
		}
		for _, ct := range nested(d.Body, "content") {
			rules = append(rules, rule{c.attrText(ct.Body, "filter_prefix"), "var.work_suffixes", c.attrText(ct.Body, "queue_arn")})
		}
		def := c.variableDefault("work_suffixes")
		for it := def.ElementIterator(); it.Next(); {
			_, v := it.Element()
			suffixes = append(suffixes, v.AsString())
		}
	}
	resolve := func(s string) []string {
		switch {
		case s == "var.work_suffixes":
			return suffixes
		case strings.HasPrefix(s, "local."):
			return []string{c.localString(strings.TrimPrefix(s, "local."))}
		case s == "":
			return []string{""}
		}
		v, err := strconv.Unquote(s)
		if err != nil {
			t.Fatalf("notification filter %s is neither a literal nor a local", s)
		}
		return []string{v}
	}
	route := func(key string) []string {
		var queues []string
		for _, r := range rules {
			for _, p := range resolve(r.prefix) {
				for _, s := range resolve(r.suffix) {
					if strings.HasPrefix(key, p) && strings.HasSuffix(key, s) {
						queues = append(queues, r.queue)
					}
				}
			}
		}
		return queues
	}
	todo, done, failed, hevc := lib["TodoPrefix"], lib["DonePrefix"], lib["FailedPrefix"], lib["HevcSuffix"]
	for key, want := range map[string][]string{
		// Cameras write .MP4; library.IsVideo accepts any case, and S3
		// suffix filters are case-sensitive.
		todo + "Smartphones/alice/VID_1.mp4":           {"aws_sqs_queue.work.arn"},
		todo + "Smartphones/bob/DCIM/CLIP 0001.MP4":    {"aws_sqs_queue.work.arn"},
		done + "Smartphones/alice/VID_1" + hevc:        {"aws_sqs_queue.results.arn"},
		done + "Smartphones/bob/DCIM/CLIP 0001" + hevc: {"aws_sqs_queue.results.arn"},
		// Issue 15, point 5: the result of CLIP.MP4 is CLIP-hevc-MP4.mp4
		// (library.HevcRel), so that CLIP.mp4 beside it keeps its own.
		done + "Smartphones/bob/DCIM/CLIP 0001-hevc-MP4.mp4": {"aws_sqs_queue.results.arn"},
		done + "Smartphones/bob/DCIM/CLIP 0002-hevc-Mp4.mp4": {"aws_sqs_queue.results.arn"},
		failed + "Smartphones/alice/VID_1.mp4.json":          nil,
		todo + "Smartphones/alice/notes.txt":                 nil,
	} {
		if got := route(key); !slices.Equal(got, want) {
			t.Errorf("an upload of %q notifies %v, want %v", key, got, want)
		}
	}
	for _, s := range suffixes {
		if !strings.EqualFold(s, ".mp4") {
			t.Errorf("work suffix %q is not a spelling of .mp4", s)
		}
	}
}

func TestTerraformQueues(t *testing.T) {
	c := loadTerraform(t)
	queues := c.find("resource", "aws_sqs_queue")
	if len(queues) != 4 {
		t.Fatalf("want 4 queues (work, results and their DLQs), found %d", len(queues))
	}
	for _, q := range queues {
		name := q.Labels[1]
		if c.attrText(q.Body, "sqs_managed_sse_enabled") != "true" {
			t.Errorf("queue %s: sqs_managed_sse_enabled must be true", name)
		}
		if name == "work" || name == "results" {
			if c.attrText(q.Body, "receive_wait_time_seconds") != "20" {
				t.Errorf("queue %s must long-poll (receive_wait_time_seconds = 20)", name)
			}
			rp := c.attrText(q.Body, "redrive_policy")
			if !strings.Contains(rp, "aws_sqs_queue."+name+"_dlq.arn") || !strings.Contains(rp, "maxReceiveCount     = var.max_receive_count") {
				t.Errorf("queue %s: redrive policy must target %s_dlq with var.max_receive_count: %s", name, name, rp)
			}
		}
	}
	if n := c.variableNumber("max_receive_count"); n != 5 {
		t.Errorf("max_receive_count defaults to %d, want 5", n)
	}

	// Visibility vs the processor's heartbeat: the queue and the task get
	// their values from the same variables, and the defaults leave room for
	// one missed heartbeat.
	work := c.one("resource", "aws_sqs_queue", "work")
	if got := c.attrText(work.Body, "visibility_timeout_seconds"); got != "var.work_visibility_timeout_seconds" {
		t.Errorf("work queue visibility is %s, want var.work_visibility_timeout_seconds", got)
	}
	env, _ := objectItems(c.firstObjectOf("processor_environment"))
	if got := c.text(env["VISIBILITY_TIMEOUT"]); got != `"${var.work_visibility_timeout_seconds}s"` {
		t.Errorf("processor VISIBILITY_TIMEOUT = %s, want the queue's variable", got)
	}
	if got := c.text(env["HEARTBEAT_INTERVAL"]); got != `"${var.processor_heartbeat_interval_seconds}s"` {
		t.Errorf("processor HEARTBEAT_INTERVAL = %s, want var.processor_heartbeat_interval_seconds", got)
	}
	vis, hb := c.variableNumber("work_visibility_timeout_seconds"), c.variableNumber("processor_heartbeat_interval_seconds")
	if vis < 2*hb {
		t.Errorf("work queue visibility %d s < 2 x heartbeat %d s", vis, hb)
	}
	// The same rule is enforced at plan time for non-default values.
	if !strings.Contains(c.text(c.one("resource", "terraform_data", "checks").Body), "var.work_visibility_timeout_seconds >= 2 * var.processor_heartbeat_interval_seconds") {
		t.Errorf("terraform_data.checks must enforce visibility >= 2 x heartbeat")
	}

	// Only this bucket may send: aws:SourceArn on both queue policies.
	for _, p := range []string{"work_queue_policy", "results_queue_policy"} {
		found := false
		for _, st := range c.statements(p) {
			if st.effect == "Allow" && strings.Contains(st.principal, "s3.amazonaws.com") {
				found = true
				if !strings.Contains(st.condition, `"aws:SourceArn" = local.bucket_arn`) || !strings.Contains(st.condition, `"aws:SourceAccount" = local.account_id`) {
					t.Errorf("%s: the S3 statement must be limited by aws:SourceArn and aws:SourceAccount: %s", p, st.condition)
				}
			}
		}
		if !found {
			t.Errorf("%s has no statement for s3.amazonaws.com", p)
		}
	}
	for _, qp := range c.find("resource", "aws_sqs_queue_policy") {
		if !strings.HasPrefix(c.attrText(qp.Body, "policy"), "local.") {
			t.Errorf("queue policy %s must use a policy from policies.tf", qp.Labels[1])
		}
	}
}

// firstObjectOf returns the first object constructor in a local (the
// literal part of merge({...}, ...)).
func (c *tfConfig) firstObjectOf(local string) *hclsyntax.ObjectConsExpr {
	objs := allObjects(c.local(local))
	if len(objs) == 0 {
		c.t.Fatalf("local.%s has no object literal", local)
	}
	return objs[0]
}

type statement struct {
	sid, effect, principal, condition string
	actions                           []string
	resources                         []string // literal strings, and source text of references
}

// statements are the IAM statements (objects with an Effect) of a policy
// local; merge(local.x, {...}) counts as one statement made of both, and
// local.x.y is the statement y of the map local.x (shared_statements).
func (c *tfConfig) statements(local string) []statement {
	var out []statement
	inMerge := map[*hclsyntax.ObjectConsExpr]bool{}
	var found []map[string]hclsyntax.Expression
	hclsyntax.VisitAll(c.local(local), func(n hclsyntax.Node) hcl.Diagnostics {
		if tr, ok := n.(*hclsyntax.ScopeTraversalExpr); ok && tr.Traversal.RootName() == "local" && len(tr.Traversal) == 3 {
			name, ok1 := tr.Traversal[1].(hcl.TraverseAttr)
			key, ok2 := tr.Traversal[2].(hcl.TraverseAttr)
			if !ok1 || !ok2 {
				return nil
			}
			if m, ok := objectItems(c.local(name.Name)); ok {
				if items, ok := objectItems(m[key.Name]); ok {
					if _, ok := items["Effect"]; ok {
						found = append(found, items)
					}
				}
			}
			return nil
		}
		fc, ok := n.(*hclsyntax.FunctionCallExpr)
		if !ok || fc.Name != "merge" {
			return nil
		}
		items := map[string]hclsyntax.Expression{}
		for _, a := range fc.Args {
			if o, ok := a.(*hclsyntax.ObjectConsExpr); ok {
				inMerge[o] = true
				m, _ := objectItems(o)
				maps.Copy(items, m)
			} else if tr, ok := a.(*hclsyntax.ScopeTraversalExpr); ok && tr.Traversal.RootName() == "local" && len(tr.Traversal) == 2 {
				if m, ok := objectItems(c.local(tr.Traversal[1].(hcl.TraverseAttr).Name)); ok {
					maps.Copy(items, m)
				}
			}
		}
		if _, ok := items["Effect"]; ok {
			found = append(found, items)
		}
		return nil
	})
	for _, o := range allObjects(c.local(local)) {
		if inMerge[o] {
			continue
		}
		items, _ := objectItems(o)
		if _, ok := items["Effect"]; ok {
			found = append(found, items)
		}
	}
	for _, items := range found {
		st := statement{}
		if v, ok := literal(items["Effect"]); ok {
			st.effect = v.AsString()
		}
		if e, ok := items["Sid"]; ok {
			if v, ok := literal(e); ok {
				st.sid = v.AsString()
			}
		}
		if e, ok := items["Principal"]; ok {
			st.principal = c.text(e)
		}
		if e, ok := items["Condition"]; ok {
			st.condition = c.text(e)
		}
		if e, ok := items["Action"]; ok {
			lits, refs := c.stringsOf(e)
			if len(refs) > 0 {
				c.t.Errorf("%s: statement %s: actions must be literal, got %v", local, st.sid, refs)
			}
			st.actions = lits
		}
		if e, ok := items["Resource"]; ok {
			lits, refs := c.stringsOf(e)
			st.resources = append(lits, refs...)
		}
		out = append(out, st)
	}
	return out
}

// Resource "*" is allowed only for these actions (AWS cannot scope them to a
// resource; ListTasks is scoped to the cluster by a condition).
var starResourceActions = map[string]bool{"ecr:GetAuthorizationToken": true, "ecs:ListTasks": true, "ecs:DescribeTaskDefinition": true}

func TestTerraformIAMLeastPrivilege(t *testing.T) {
	c := loadTerraform(t)
	identity := []string{"execution_policy", "dispatcher_execution_policy", "processor_policy", "dispatcher_policy",
		"uploader_policy", "downloader_policy", "trigger_policy", "home_policy"}
	var all []string
	for _, b := range c.find("locals") {
		for name := range b.Body.Attributes {
			if strings.HasSuffix(name, "_policy") {
				all = append(all, name)
			}
		}
	}
	slices.Sort(all)
	for _, p := range identity {
		if !slices.Contains(all, p) {
			t.Fatalf("local.%s is missing", p)
		}
	}
	for _, p := range all {
		sts := c.statements(p)
		if len(sts) == 0 {
			t.Errorf("local.%s has no statements", p)
		}
		for _, st := range sts {
			if st.effect != "Allow" {
				continue
			}
			for _, a := range st.actions {
				if strings.Contains(a, "*") {
					t.Errorf("%s: statement %s allows the wildcard action %q", p, st.sid, a)
				}
			}
			if slices.Contains(st.resources, "*") {
				for _, a := range st.actions {
					if !starResourceActions[a] {
						t.Errorf(`%s: statement %s allows %s on Resource "*"`, p, st.sid, a)
					}
					if a == "ecs:ListTasks" && !strings.Contains(st.condition, `"ecs:cluster" = local.cluster_arn`) {
						t.Errorf("%s: ecs:ListTasks on * must be limited to the cluster by ecs:cluster", p)
					}
				}
			}
			if slices.Contains(identity, p) && st.principal != "" {
				t.Errorf("%s: identity policy statement %s has a Principal", p, st.sid)
			}
		}
	}

	// The processor: get/delete TODO/*, put DONE/* and FAILED/*, its queue;
	// and, in a statement of its own, put its cost record COSTS/* (issue 17).
	wantProc := map[string][]string{
		"s3:GetObject":                {"local.todo_objects"},
		"s3:DeleteObject":             {"local.todo_objects"},
		"s3:PutObject":                {"local.done_objects", "local.failed_objects"},
		"s3:AbortMultipartUpload":     {"local.done_objects", "local.failed_objects"},
		"s3:ListBucket":               {"local.bucket_arn"},
		"sqs:ChangeMessageVisibility": {"aws_sqs_queue.work.arn"},
		"sqs:DeleteMessage":           {"aws_sqs_queue.work.arn"},
		"kms:Decrypt":                 {"local.kms_key_arns"},
		"kms:GenerateDataKey":         {"local.kms_key_arns"},
	}
	for _, st := range c.statements("processor_policy") {
		if st.sid == "WriteCostRecords" {
			if !slices.Equal(st.actions, []string{"s3:PutObject"}) || !slices.Equal(st.resources, []string{"local.cost_objects"}) {
				t.Errorf("processor: WriteCostRecords allows %v on %v, want s3:PutObject on local.cost_objects", st.actions, st.resources)
			}
			continue
		}
		for _, a := range st.actions {
			want, ok := wantProc[a]
			if !ok {
				t.Errorf("processor may not %s", a)
				continue
			}
			if !slices.Equal(st.resources, want) {
				t.Errorf("processor: %s on %v, want %v", a, st.resources, want)
			}
		}
	}
	for _, pair := range [][2]string{{"todo_objects", "todo_prefix"}, {"done_objects", "done_prefix"}, {"failed_objects", "failed_prefix"}, {"cost_objects", "costs_prefix"}} {
		if got, want := c.text(c.local(pair[0])), `"${aws_s3_bucket.this.arn}/${local.`+pair[1]+`}*"`; got != want {
			t.Errorf("local.%s = %s, want %s", pair[0], got, want)
		}
	}

	// The dispatcher: RunTask of the processor's task definition on this
	// cluster, PassRole of the processor's roles only.
	for _, st := range c.statements("dispatcher_policy") {
		switch {
		case slices.Contains(st.actions, "ecs:RunTask"):
			if !slices.Equal(st.resources, []string{"local.processor_task_definition_arn_any"}) || !strings.Contains(st.condition, "local.cluster_arn") {
				t.Errorf("dispatcher: ecs:RunTask must be on the processor task definition in this cluster: %v %s", st.resources, st.condition)
			}
		case slices.Contains(st.actions, "iam:PassRole"):
			if !slices.Equal(st.resources, []string{"aws_iam_role.processor.arn", "aws_iam_role.execution.arn"}) || !strings.Contains(st.condition, "ecs-tasks.amazonaws.com") {
				t.Errorf("dispatcher: iam:PassRole must be for the processor's roles, passed to ECS tasks: %v", st.resources)
			}
		}
	}
	if got, want := c.text(c.local("processor_task_definition_arn_any")), `"arn:${local.partition}:ecs:${var.aws_region}:${local.account_id}:task-definition/${local.processor_family}:*"`; got != want {
		t.Errorf("processor_task_definition_arn_any = %s, want %s", got, want)
	}

	// Home: put TODO/*, get/delete DONE/*, nothing of the processor's.
	for _, st := range c.statements("home_policy") {
		for _, a := range st.actions {
			if a == "s3:DeleteObject" && !slices.Equal(st.resources, []string{"local.done_objects"}) {
				t.Errorf("home may delete only DONE/*, got %v", st.resources)
			}
			if a == "s3:PutObject" && !slices.Equal(st.resources, []string{"local.todo_objects"}) {
				t.Errorf("home may put only TODO/*, got %v", st.resources)
			}
			if strings.HasPrefix(a, "iam:") || a == "ecs:RunTask" {
				t.Errorf("home may not %s", a)
			}
		}
	}

	// Issue 15, point 7: the uploader, the downloader and trigger are
	// separate identities, each with only what it needs.
	allowed := func(policy string) map[string][]string {
		out := map[string][]string{}
		for _, st := range c.statements(policy) {
			if st.effect != "Allow" {
				continue
			}
			for _, a := range st.actions {
				out[a] = append(out[a], st.resources...)
			}
		}
		for a := range out {
			slices.Sort(out[a])
		}
		return out
	}
	for policy, want := range map[string]map[string][]string{
		"uploader_policy": {
			"s3:ListBucket":           {"local.bucket_arn"},
			"s3:PutObject":            {"local.todo_objects"},
			"s3:AbortMultipartUpload": {"local.todo_objects"},
			"s3:GetObject":            {"local.done_objects", "local.failed_objects", "local.todo_objects"},
		},
		"downloader_policy": {
			"s3:ListBucket":               {"local.bucket_arn"},
			"s3:GetObject":                {"local.done_objects"},
			"s3:DeleteObject":             {"local.done_objects"},
			"sqs:ReceiveMessage":          {"aws_sqs_queue.results.arn"},
			"sqs:DeleteMessage":           {"aws_sqs_queue.results.arn"},
			"sqs:ChangeMessageVisibility": {"aws_sqs_queue.results.arn"},
			"sqs:GetQueueAttributes":      {"aws_sqs_queue.results.arn"},
			"sqs:GetQueueUrl":             {"aws_sqs_queue.results.arn"},
		},
		"trigger_policy": {
			"s3:ListBucket":          {"local.bucket_arn"},
			"s3:GetObject":           {"local.cost_objects", "local.failed_objects"}, // FAILED/ reasons and the month's cost (status)
			"sqs:SendMessage":        {"aws_sqs_queue.work.arn"},
			"sqs:ReceiveMessage":     {"aws_sqs_queue.work_dlq.arn"},
			"sqs:DeleteMessage":      {"aws_sqs_queue.work_dlq.arn"},
			"sqs:GetQueueAttributes": {"aws_sqs_queue.results.arn", "aws_sqs_queue.results_dlq.arn", "aws_sqs_queue.work.arn", "aws_sqs_queue.work_dlq.arn"},
			"sqs:GetQueueUrl":        {"aws_sqs_queue.results.arn", "aws_sqs_queue.results_dlq.arn", "aws_sqs_queue.work.arn", "aws_sqs_queue.work_dlq.arn"},
			"ecs:DescribeTasks":      {"local.cluster_tasks_arn"},
			"ecs:ListTasks":          {"*"},
		},
	} {
		got := allowed(policy)
		for a := range got {
			if strings.HasPrefix(a, "kms:") {
				delete(got, a) // the bucket's CMK, when there is one
			}
		}
		if !maps.EqualFunc(got, want, slices.Equal[[]string]) {
			t.Errorf("%s allows %v, want %v", policy, got, want)
		}
	}
	users := c.one("resource", "aws_iam_user_policy", "service")
	if got := c.attrText(users.Body, "policy"); got != "each.value" {
		t.Errorf("aws_iam_user_policy.service uses %s, want each.value of local.home_identities", got)
	}
	ids, _ := objectItems(c.local("home_identities"))
	gotIDs := map[string]string{}
	for k, v := range ids {
		gotIDs[k] = c.text(v)
	}
	if want := map[string]string{"s3-uploader": "local.uploader_policy", "result-downloader": "local.downloader_policy", "trigger": "local.trigger_policy"}; !maps.Equal(gotIDs, want) {
		t.Errorf("local.home_identities = %v, want %v", gotIDs, want)
	}
	// The dispatcher has its own execution role, which it cannot pass.
	if got := c.attrText(c.one("resource", "aws_ecs_task_definition", "dispatcher").Body, "execution_role_arn"); got != "aws_iam_role.dispatcher_execution[0].arn" {
		t.Errorf("dispatcher task execution role = %s, want its own (aws_iam_role.dispatcher_execution)", got)
	}
	if got := c.attrText(c.one("resource", "aws_ecs_task_definition", "processor").Body, "execution_role_arn"); got != "aws_iam_role.execution.arn" {
		t.Errorf("processor task execution role = %s, want aws_iam_role.execution", got)
	}
	for _, st := range c.statements("dispatcher_policy") {
		if slices.Contains(st.actions, "iam:PassRole") {
			for _, r := range st.resources {
				if strings.Contains(r, "dispatcher") {
					t.Errorf("dispatcher may pass its own role %s", r)
				}
			}
		}
	}
	// RunTask must not override the task's roles (a task role override is
	// how a passable execution role would become a task role).
	ecsSrc, err := os.ReadFile(filepath.Join(repoRoot(t), "pkg", "launch", "ecs", "ecs.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"TaskRoleArn", "ExecutionRoleArn"} {
		if strings.Contains(string(ecsSrc), field) {
			t.Errorf("pkg/launch/ecs sets %s in RunTask: the task definition's roles must not be overridden", field)
		}
	}

	// Every role and user uses one of these policies.
	for _, typ := range []string{"aws_iam_role_policy", "aws_iam_user_policy", "aws_iam_policy"} {
		for _, b := range c.find("resource", typ) {
			if p := c.attrText(b.Body, "policy"); p != "each.value" && !slices.Contains(identity, strings.TrimPrefix(p, "local.")) {
				t.Errorf("%s.%s uses %s, not one of the checked policies", typ, b.Labels[1], p)
			}
		}
	}
}

// Every variable in the processor's task definition is one the processor
// reads; so are the per-job ones the dispatcher adds (launch.Job.Env).
func TestTerraformProcessorEnvMatchesCode(t *testing.T) {
	c := loadTerraform(t)
	vars := serviceVars(t, "hevc-processor")
	logging := loggingVars(t)
	for _, k := range c.envKeys("processor_environment") {
		if _, ok := vars[k]; !ok && !logging[k] {
			t.Errorf("the processor task definition sets %s, which hevc-processor does not read (it reads %v)", k, sortedKeys(vars))
		}
	}
	given := map[string]bool{}
	for _, k := range c.envKeys("processor_environment") {
		given[k] = true
	}
	for _, k := range jobEnvKeys(t) {
		given[k] = true
		if _, ok := vars[k]; !ok {
			t.Errorf("launch.Job.Env sets %s, which hevc-processor does not read", k)
		}
	}
	for _, v := range vars {
		if v.Required && !given[v.Name] {
			t.Errorf("hevc-processor requires %s, but neither the task definition nor launch.Job.Env sets it", v.Name)
		}
	}
	td := c.one("resource", "aws_ecs_task_definition", "processor")
	if got := c.attrText(td.Body, "task_role_arn"); got != "aws_iam_role.processor.arn" {
		t.Errorf("processor task role = %s", got)
	}
	rp := nested(td.Body, "runtime_platform")
	if len(rp) != 1 || c.attrText(rp[0].Body, "cpu_architecture") != "var.processor_cpu_architecture" ||
		c.variableDefault("processor_cpu_architecture").AsString() != "ARM64" {
		t.Errorf("processor must run on var.processor_cpu_architecture, default ARM64")
	}
	es := nested(td.Body, "ephemeral_storage")
	if len(es) != 1 || c.attrText(es[0].Body, "size_in_gib") != "var.processor_ephemeral_storage_gib" {
		t.Errorf("processor ephemeral storage must be var.processor_ephemeral_storage_gib")
	}
	for a, v := range map[string]string{"cpu": "var.processor_cpu", "memory": "var.processor_memory"} {
		if got := c.attrText(td.Body, a); got != v {
			t.Errorf("processor %s = %s, want %s", a, got, v)
		}
	}
	cd := c.attrText(td.Body, "container_definitions")
	for _, want := range []string{"stopTimeout = 120", `logDriver = "awslogs"`, "aws_cloudwatch_log_group.processor.name", "name      = local.processor_container_name"} {
		if !strings.Contains(cd, want) {
			t.Errorf("processor container definition lacks %s", want)
		}
	}
	lg := c.one("resource", "aws_cloudwatch_log_group", "processor")
	if c.attrText(lg.Body, "retention_in_days") != "var.log_retention_days" {
		t.Errorf("processor log group must expire (var.log_retention_days)")
	}
	cp := c.one("resource", "aws_ecs_cluster_capacity_providers", "this")
	if got := c.attrText(cp.Body, "capacity_providers"); got != `["FARGATE", "FARGATE_SPOT"]` {
		t.Errorf("capacity providers = %s", got)
	}
}

func TestTerraformDispatcherEnvMatchesCode(t *testing.T) {
	c := loadTerraform(t)
	vars := serviceVars(t, "sqs-dispatcher")
	logging := loggingVars(t)
	for _, k := range c.envKeys("dispatcher_environment") {
		if _, ok := vars[k]; !ok && !logging[k] {
			t.Errorf("the dispatcher's environment sets %s, which sqs-dispatcher does not read (it reads %v)", k, sortedKeys(vars))
		}
	}
	env, _ := objectItems(c.firstObjectOf("dispatcher_environment"))
	for k, want := range map[string]string{
		"ECS_TASK_DEFINITION": "local.processor_family",
		"ECS_CONTAINER_NAME":  "local.processor_container_name",
		"WORK_QUEUE_URL":      "aws_sqs_queue.work.url",
		"ECS_SECURITY_GROUPS": "aws_security_group.tasks.id",
	} {
		if got := c.text(env[k]); got != want {
			t.Errorf("dispatcher %s = %s, want %s", k, got, want)
		}
	}
	if got := c.text(c.one("resource", "aws_ecs_task_definition", "processor").Body.Attributes["family"].Expr); got != "local.processor_family" {
		t.Errorf("processor family = %s, want local.processor_family", got)
	}
}

func TestTerraformOutputs(t *testing.T) {
	c := loadTerraform(t)
	have := map[string]bool{}
	for _, o := range c.find("output") {
		have[o.Labels[0]] = true
		if attr(o.Body, "description") == nil {
			t.Errorf("output %q has no description", o.Labels[0])
		}
	}
	for _, want := range []string{"aws_region", "bucket_name", "work_queue_url", "results_queue_url", "work_dlq_url", "results_dlq_url",
		"ecs_cluster_name", "processor_task_definition", "processor_container_name", "subnet_ids", "security_group_id",
		"sns_topic_arn", "home_user_name", "service_user_names", "service_policy_arns", "dispatcher_env", "portainer_env"} {
		if !have[want] {
			t.Errorf("output %q is missing", want)
		}
	}
}

func TestTerraformBackendLeftToUser(t *testing.T) {
	c := loadTerraform(t)
	for _, b := range c.find("terraform") {
		if len(nested(b.Body, "backend")) > 0 || len(nested(b.Body, "cloud")) > 0 {
			t.Errorf("a backend is configured in %s; it is the user's choice (README shows an S3 backend)", b.Range().Filename)
		}
		if attr(b.Body, "required_version") == nil || len(nested(b.Body, "required_providers")) == 0 {
			t.Errorf("terraform block needs required_version and required_providers")
		}
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "terraform", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), `backend "s3"`) {
		t.Errorf("terraform/README.md must show an S3 backend example")
	}
}

func TestTerraformTfvarsExample(t *testing.T) {
	c := loadTerraform(t)
	body, _ := parseHCLFile(t, filepath.Join(repoRoot(t), "terraform", "terraform.tfvars.example"))
	for name := range body.Attributes {
		if len(c.find("variable", name)) == 0 {
			t.Errorf("terraform.tfvars.example sets %q, which is not a variable", name)
		}
	}
	for _, v := range c.find("variable") {
		if attr(v.Body, "default") == nil && body.Attributes[v.Labels[0]] == nil {
			t.Errorf("required variable %q is missing from terraform.tfvars.example", v.Labels[0])
		}
	}
}

func TestTerraformFmt(t *testing.T) {
	tf := needTool(t, "terraform")
	root := repoRoot(t)
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "CHECKPOINT_DISABLE=1")
	if out, err := run(t, root, env, tf, "fmt", "-check", "-recursive", "-diff", "terraform"); err != nil {
		t.Errorf("terraform fmt -check -recursive terraform: %v\n%s", err, out)
	}
	// HCL files terraform fmt does not pick up by name.
	for _, p := range []string{"terraform/terraform.tfvars.example", "deployments/docker/docker-bake.hcl"} {
		src, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(tf, "fmt", "-")
		cmd.Env = env
		cmd.Stdin = strings.NewReader(string(src))
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("terraform fmt - < %s: %v", p, err)
		} else if string(out) != string(src) {
			t.Errorf("%s is not formatted (terraform fmt)", p)
		}
	}
}

// providerMirror finds a local provider mirror with hashicorp/aws (this
// machine image has one at /opt/tf-plugins); TF_PLUGIN_DIR overrides.
func providerMirror() string {
	for _, d := range []string{os.Getenv("TF_PLUGIN_DIR"), "/opt/tf-plugins"} {
		if d == "" {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(d, "registry.terraform.io", "hashicorp", "aws", "*", "*", "terraform-provider-aws*")); len(m) > 0 {
			return d
		}
	}
	return ""
}

// terraform validate and terraform test (tests/*.tftest.hcl: a mocked AWS
// provider) on a copy of terraform/, with the provider from the local
// mirror: nothing is downloaded and no AWS account is used.
func TestTerraformValidateAndTest(t *testing.T) {
	tf := needTool(t, "terraform")
	mirror := providerMirror()
	if mirror == "" {
		if inCI() {
			t.Fatal("no terraform provider mirror with hashicorp/aws (set TF_PLUGIN_DIR)")
		}
		t.Skip("no terraform provider mirror with hashicorp/aws (set TF_PLUGIN_DIR)")
	}
	work := t.TempDir()
	src := filepath.Join(repoRoot(t), "terraform")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if d.Name() == ".terraform" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(work, rel), 0o755)
		}
		if strings.HasSuffix(p, ".tf") || strings.HasSuffix(p, ".tftest.hcl") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(work, rel), b, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "TF_INPUT=0")
	steps := [][]string{
		{"init", "-backend=false", "-input=false", "-no-color", "-plugin-dir=" + mirror},
		{"validate", "-no-color"},
		{"test", "-no-color"},
	}
	for _, s := range steps {
		out, err := run(t, work, env, tf, s...)
		if err != nil {
			t.Fatalf("terraform %s: %v\n%s", strings.Join(s, " "), err, out)
		}
		if s[0] == "test" {
			t.Logf("terraform test: %s", lastLine(out))
			if !strings.Contains(out, "0 failed") {
				t.Errorf("terraform test:\n%s", out)
			}
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
