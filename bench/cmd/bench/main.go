// Command bench runs every benchmark of the repository side by side and
// writes bench/results.md and bench/results.json (`make bench`, or
// `make bench QUICK=1` for the reduced set). See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hevc-encoder/hevc-encoder/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	var o bench.Options
	var groups string
	quickEnv := os.Getenv("QUICK")
	quick := flag.Bool("quick", quickEnv == "1" || quickEnv == "true", "reduced set, under 5 minutes (also QUICK=1)")
	flag.StringVar(&o.Mode, "mode", "", "full, quick or tiny (overrides -quick)")
	flag.StringVar(&o.Root, "root", "", "repository root (default: found from the working directory)")
	flag.StringVar(&o.OutDir, "out", "", "directory for results.md and results.json (default <root>/bench)")
	flag.IntVar(&o.Runs, "runs", 0, "alternating runs per side of the overhead benchmark (default 7, quick 1)")
	flag.StringVar(&groups, "only", "", "comma-separated groups to run: overhead, efficiency, external (default all)")
	flag.StringVar(&o.ProcessorBin, "processor", "", "hevc-processor binary (default: built from the repository)")
	flag.StringVar(&o.CacheDir, "cache", "", "generated clip cache (default ~/.cache/hevc-encoder/bench)")
	flag.Float64Var(&o.OverheadSecs, "overhead-secs", 0, "length of the overhead clip in seconds (default 30; for experiments)")
	render := flag.Bool("render", false, "only write results.md (and bench/README.md's preset table) again from the -out directory's results.json")
	strict := flag.Bool("strict", false, "exit 1 when a judged row fails (default: only when the harness cannot run)")
	flag.Parse()
	if o.Mode == "" {
		o.Mode = "full"
		if *quick {
			o.Mode = "quick"
		}
	}
	if groups != "" {
		o.Groups = strings.Split(groups, ",")
	}
	if o.Root == "" {
		root, err := findRoot()
		if err != nil {
			return err
		}
		o.Root = root
	}
	if *render {
		dir := o.OutDir
		if dir == "" {
			dir = filepath.Join(o.Root, "bench")
		}
		return bench.Rerender(dir, bench.PresetsReadme(o.Root, dir))
	}
	sum, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range sum.Rows {
		if r.Target != bench.Info && r.Target != "" && !r.Pass {
			failed++
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %d rows, %d failing, %d problems; see %s\n", len(sum.Rows), failed, len(sum.Problems), sum.MD)
	if *strict && (failed > 0 || len(sum.Problems) > 0) {
		return errors.New("failing rows or problems (see results.md)")
	}
	return nil
}

// findRoot walks up from the working directory to the go.work file.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.work above %s; pass -root", dir)
		}
	}
}
