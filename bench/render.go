package bench

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hevc-encoder/hevc-encoder/pkg/media"
)

// renderMarkdown writes results.md: the side-by-side table first, then the
// encode details, the quality presets, the notes of every row and any
// problem. bench/README.md explains how to read it.
func renderMarkdown(meta map[string]any, rows []Result, encodes []Encoded, problems []string, ext []External) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	rows = sortRows(rows)

	w("# Benchmark results\n\n")
	w("Written by `make bench` (%s mode) at %v in %vs on %v CPUs (x265 threads here: `%v`); ", meta["mode"], meta["generated"], meta["duration_s"], meta["cpus"], meta["x265_threads"])
	w("load average %v before, %v after; %v; %v. ", meta["load_before"], meta["load_after"], meta["ffmpeg"], meta["go"])
	w("How to read this page: [README.md](README.md). Raw numbers: [results.json](results.json).\n\n")
	if meta["mode"] != string(full) {
		w("> **%s mode**: reduced clips and single runs; the numbers show that the harness works, not the performance. Run `make bench` for the real figures.\n\n", meta["mode"])
	}

	judged, passed := 0, 0
	for _, r := range rows {
		if r.Target != Info && r.Target != "" {
			judged++
			if r.Pass {
				passed++
			}
		}
	}
	w("**%d of %d judged rows pass**; %d rows are reported for information.", passed, judged, len(rows)-judged)
	if len(problems) > 0 {
		w(" %d problem(s), listed at the end.", len(problems))
	}
	w("\n\n")

	w("| issue | case | ours | anchor | ratio | target | result |\n|---:|---|---:|---|---:|---|---|\n")
	for _, r := range rows {
		anchor := "—"
		if r.Anchor != 0 || r.AnchorName != "" {
			anchor = withUnit(r.Anchor, r.Unit)
			if r.AnchorName != "" {
				anchor += " (" + r.AnchorName + ")"
			}
		}
		issue := "—"
		if r.Issue > 0 {
			issue = fmt.Sprint(r.Issue)
		}
		w("| %s | %s | %s | %s | %s | %s | %s |\n", issue, mdEscape(r.Case), withUnit(r.Ours, r.Unit), mdEscape(anchor),
			ratioCell(r), mdEscape(targetCell(r.Target)), passCell(r))
	}

	if len(encodes) > 0 {
		w("\n## Encode efficiency: our default vs the seed's command (issue 8)\n\n")
		w("Seed: `ffmpeg -i in.mp4 -c:v libx265 -crf 26 -preset fast -c:a copy out.mp4`. Ours: `pkg/media` NewPlan + Encode with the default settings ")
		w("(`balanced`: CRF 26, preset fast with `" + media.BalancedTune + "`), x265 threads sized to the CPUs (two frames in flight on 2-3 CPUs). ")
		w("SSIM and PSNR against the H.264 source, ffmpeg's `ssim`/`psnr` filters ")
		w("(all planes; 10-bit compared in 10 bits). fps = frames / wall-clock seconds of the encode.\n\n")
		w("| clip | encoder | file (KiB) | video (KiB) | kbit/s | SSIM | SSIM (dB) | PSNR (dB) | fps | output |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
		for _, e := range encodes {
			out := e.PixFmt
			if e.Transfer != "" && e.Transfer != "unknown" {
				out += ", " + e.Transfer
			}
			w("| %s | %s | %.1f | %.1f | %.0f | %.5f | %.2f | %.2f | %.1f | %s |\n", e.Clip, e.Encoder, float64(e.Bytes)/1024, float64(e.Video)/1024, e.KbitS, e.SSIM, e.SSIMdB, e.PSNR, e.FPS, out)
		}
		w("\n### Quality presets (`QUALITY=archive|balanced|small`)\n\n")
		w("Means over the clips above; size relative to `balanced` on the same clip.\n\n")
		b.WriteString(presetsTable(encodes))
	}

	w("\n## Notes per row\n\n")
	for _, r := range rows {
		if r.Notes != "" {
			w("- **%s**: %s\n", mdEscape(r.Case), mdEscape(r.Notes))
		}
	}
	w("\n## Benchmarks in this run\n\n- `bench` (this harness, issue 8): processor overhead, encode efficiency, presets, processor RSS\n")
	for _, e := range ext {
		ws := ""
		if !e.InWorkspace {
			ws = " (module not in go.work; built with GOWORK=off)"
		}
		w("- `%s`%s\n", e.Name, ws)
	}
	if len(problems) > 0 {
		w("\n## Problems\n\n")
		for _, p := range problems {
			w("- %s\n", mdEscape(clip(p, 2000)))
		}
	}
	return b.String()
}

func targetCell(t string) string {
	switch t {
	case "", Info:
		return "—"
	}
	return t
}

type presetRow struct {
	name, settings                string
	size, ssim, ssimDB, psnr, fps float64
}

var presetSettings = map[string]string{
	"archive": "CRF 22, slow", "ours": "CRF 26, fast + " + media.BalancedTune, "small": "CRF 28, medium",
}

// presetsTable is the quality preset table of results.md, also kept in
// bench/README.md between its presets markers.
func presetsTable(encodes []Encoded) string {
	var b strings.Builder
	b.WriteString("| preset | settings | size vs balanced | SSIM | SSIM (dB) | PSNR (dB) | fps |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, p := range presetSummary(encodes) {
		fmt.Fprintf(&b, "| %s | %s | %.2f× | %.5f | %.2f | %.2f | %.1f |\n", p.name, p.settings, p.size, p.ssim, p.ssimDB, p.psnr, p.fps)
	}
	return b.String()
}

// presetSummary averages each preset over the clips it was run on.
func presetSummary(encodes []Encoded) []presetRow {
	balanced := map[string]Encoded{}
	for _, e := range encodes {
		if e.Encoder == "ours" {
			balanced[e.Clip] = e
		}
	}
	type acc struct {
		n                             int
		size, ssim, ssimDB, psnr, fps float64
	}
	sums := map[string]*acc{}
	for _, e := range encodes {
		bal, ok := balanced[e.Clip]
		if _, preset := presetSettings[e.Encoder]; !ok || !preset || bal.Video == 0 {
			continue // the seed and the variants are not presets
		}
		a := sums[e.Encoder]
		if a == nil {
			a = &acc{}
			sums[e.Encoder] = a
		}
		a.n++
		a.size += float64(e.Video) / float64(bal.Video)
		a.ssim += e.SSIM
		a.ssimDB += e.SSIMdB
		a.psnr += e.PSNR
		a.fps += e.FPS
	}
	order := map[string]int{"archive": 0, "ours": 1, "small": 2}
	var out []presetRow
	for name, a := range sums {
		n := float64(a.n)
		label := name
		if name == "ours" {
			label = "balanced (default)"
		}
		out = append(out, presetRow{name: label, settings: presetSettings[name], size: a.size / n, ssim: a.ssim / n, ssimDB: a.ssimDB / n, psnr: a.psnr / n, fps: a.fps / n})
	}
	sort.Slice(out, func(i, j int) bool {
		ni, nj := strings.Fields(out[i].name)[0], strings.Fields(out[j].name)[0]
		if ni == "balanced" {
			ni = "ours"
		}
		if nj == "balanced" {
			nj = "ours"
		}
		return order[ni] < order[nj]
	})
	return out
}
