package deploytest

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// tfConfig is the terraform/ directory parsed with hclsyntax, for reading
// the configuration as written (no provider, no evaluation of references).
type tfConfig struct {
	t      testing.TB
	src    map[string][]byte
	blocks []*hclsyntax.Block
}

func parseHCLFile(t testing.TB, path string) (*hclsyntax.Body, []byte) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse %s: %s", path, diags.Error())
	}
	return f.Body.(*hclsyntax.Body), src
}

func loadTerraform(t testing.TB) *tfConfig {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "terraform")
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.tf in %s (%v)", dir, err)
	}
	c := &tfConfig{t: t, src: map[string][]byte{}}
	for _, p := range files {
		body, src := parseHCLFile(t, p)
		c.src[p] = src
		c.blocks = append(c.blocks, body.Blocks...)
	}
	return c
}

// find returns the top-level blocks of typ whose labels start with labels.
func (c *tfConfig) find(typ string, labels ...string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range c.blocks {
		if b.Type != typ || len(b.Labels) < len(labels) {
			continue
		}
		ok := true
		for i, l := range labels {
			if b.Labels[i] != l {
				ok = false
			}
		}
		if ok {
			out = append(out, b)
		}
	}
	return out
}

// one returns the single top-level block typ "labels...".
func (c *tfConfig) one(typ string, labels ...string) *hclsyntax.Block {
	c.t.Helper()
	bs := c.find(typ, labels...)
	if len(bs) != 1 {
		c.t.Fatalf("want exactly one %s %q, found %d", typ, labels, len(bs))
	}
	return bs[0]
}

// text is the source text of a node.
func (c *tfConfig) text(n hclsyntax.Node) string {
	r := n.Range()
	return string(c.src[r.Filename][r.Start.Byte:r.End.Byte])
}

// attr returns the attribute name of body b (nil if absent).
func attr(b *hclsyntax.Body, name string) *hclsyntax.Attribute { return b.Attributes[name] }

// nested returns the nested blocks of b with type typ.
func nested(b *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, x := range b.Blocks {
		if x.Type == typ {
			out = append(out, x)
		}
	}
	return out
}

// attrText is the source text of attribute name in b, "" if absent.
func (c *tfConfig) attrText(b *hclsyntax.Body, name string) string {
	a := attr(b, name)
	if a == nil {
		return ""
	}
	return c.text(a.Expr)
}

// literal evaluates an expression that references nothing and calls no
// function.
func literal(e hclsyntax.Expression) (cty.Value, bool) {
	if len(e.Variables()) > 0 {
		return cty.NilVal, false
	}
	v, diags := e.Value(nil)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.NilVal, false
	}
	return v, true
}

// local returns the expression of local name.
func (c *tfConfig) local(name string) hclsyntax.Expression {
	c.t.Helper()
	for _, b := range c.find("locals") {
		if a := attr(b.Body, name); a != nil {
			return a.Expr
		}
	}
	c.t.Fatalf("local.%s is not defined", name)
	return nil
}

// localString is a local that is a plain string literal.
func (c *tfConfig) localString(name string) string {
	c.t.Helper()
	v, ok := literal(c.local(name))
	if !ok || v.Type() != cty.String {
		c.t.Fatalf("local.%s is not a string literal: %s", name, c.text(c.local(name)))
	}
	return v.AsString()
}

// variableDefault is the literal default of variable name.
func (c *tfConfig) variableDefault(name string) cty.Value {
	c.t.Helper()
	b := c.one("variable", name)
	a := attr(b.Body, "default")
	if a == nil {
		c.t.Fatalf("variable %q has no default", name)
	}
	v, ok := literal(a.Expr)
	if !ok {
		c.t.Fatalf("variable %q: default is not a literal", name)
	}
	return v
}

func (c *tfConfig) variableNumber(name string) int64 {
	c.t.Helper()
	v := c.variableDefault(name)
	if v.Type() != cty.Number {
		c.t.Fatalf("variable %q: default is not a number", name)
	}
	n, _ := v.AsBigFloat().Int64()
	return n
}

// refVar returns X when expression text is exactly var.X.
func refVar(text string) (string, bool) {
	text = strings.TrimSpace(text)
	if !strings.HasPrefix(text, "var.") {
		return "", false
	}
	name := strings.TrimPrefix(text, "var.")
	for _, r := range name {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return "", false
		}
	}
	return name, true
}

// objectItems maps the keys of an object constructor to their values.
func objectItems(e hclsyntax.Expression) (map[string]hclsyntax.Expression, bool) {
	o, ok := e.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil, false
	}
	out := map[string]hclsyntax.Expression{}
	for _, it := range o.Items {
		if k := objectKey(it.KeyExpr); k != "" {
			out[k] = it.ValueExpr
		}
	}
	return out, true
}

func objectKey(k hclsyntax.Expression) string {
	if kw := hcl.ExprAsKeyword(k); kw != "" {
		return kw
	}
	v, diags := k.Value(nil)
	if diags.HasErrors() || v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

// allObjects returns every object constructor inside e (e included).
func allObjects(e hclsyntax.Node) []*hclsyntax.ObjectConsExpr {
	var out []*hclsyntax.ObjectConsExpr
	hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
		if o, ok := n.(*hclsyntax.ObjectConsExpr); ok {
			out = append(out, o)
		}
		return nil
	})
	return out
}

// stringsOf returns the literal strings of a string or a tuple of strings;
// non-literal items come back as their source text in ok=false positions.
func (c *tfConfig) stringsOf(e hclsyntax.Expression) (lits []string, refs []string) {
	items := []hclsyntax.Expression{e}
	if tup, ok := e.(*hclsyntax.TupleConsExpr); ok {
		items = tup.Exprs
	}
	for _, it := range items {
		if v, ok := literal(it); ok && v.Type() == cty.String {
			lits = append(lits, v.AsString())
		} else {
			refs = append(refs, c.text(it))
		}
	}
	return lits, refs
}

// traversalsTo lists the names X of every `prefix.X` reference in the config
// (e.g. var.X, local.X).
func (c *tfConfig) traversalsTo(root string) map[string]bool {
	out := map[string]bool{}
	var visit func(b *hclsyntax.Body)
	visit = func(b *hclsyntax.Body) {
		for _, a := range b.Attributes {
			for _, tr := range a.Expr.Variables() {
				if tr.RootName() == root && len(tr) > 1 {
					if s, ok := tr[1].(hcl.TraverseAttr); ok {
						out[s.Name] = true
					}
				}
			}
		}
		for _, nb := range b.Blocks {
			visit(nb.Body)
		}
	}
	for _, b := range c.blocks {
		visit(b.Body)
	}
	return out
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
