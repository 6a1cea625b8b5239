package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/progress"
	"github.com/hevc-encoder/hevc-encoder/services/result-downloader/downloader"
)

const aboutRestore = `result-downloader restore [flags] <rel>...   bring trashed originals back
result-downloader restore --list              list the trash

Moves an original that ORIGINALS=trash put in the trash
(<library>/.hevc-encoder/trash/<rel>) back to <library>/<rel>, with its own
mtime, by a rename that never replaces a file: when a file exists at <rel>
now (a newer version), nothing is changed and both stay where they are.
Then the result installed in its place (<rel>-hevc.mp4) is removed, but only
when it is still exactly the file that was installed (the trash records its
size and SHA-256); a result edited or replaced since, or one the trash has
no record of, is kept and the reason printed. Without --keep-result the
restored original is new work for the next upload (exclude it with EXCLUDE
if it should stay as it is); with --keep-result its HEVC copy stays beside
it and the uploader skips it.

<rel> is the path relative to the library root, as --list prints it.
Exits 1 when anything was not restored.

  --list          (flag only) print the trash: when each original was trashed, its size,
                  and when TRASH_DAYS removes it
  --keep-result   (flag only) restore the original but keep its -hevc.mp4 result`

func restoreMain(args []string, stdout, stderr io.Writer) error {
	var (
		root       string
		down       downloader.Config
		dirMode    string
		list, keep bool
	)
	set := config.New("result-downloader restore", aboutRestore)
	set.FlagSet().SetOutput(stderr)
	set.String(&root, "LIBRARY_ROOT", "", "library root directory", config.Required())
	set.String(&dirMode, "DIR_MODE", "0755", "octal mode of directories created for a restored original")
	set.Check(func() error {
		m, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(dirMode), "0o"), 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("DIR_MODE: not an octal mode (e.g. 0755): %q", dirMode)
		}
		down.DirMode = int(m)
		return nil
	})
	set.Int(&down.TrashDays, "TRASH_DAYS", downloader.DefaultTrashDays, "days an original stays in the trash (for --list: when each one goes)")
	set.FlagSet().BoolVar(&list, "list", false, "list the trash instead of restoring")
	set.FlagSet().BoolVar(&keep, "keep-result", false, "restore the original but keep its -hevc.mp4 result")
	if err := set.Parse(args); err != nil {
		return err
	}
	if list {
		if len(set.Args()) > 0 {
			return fmt.Errorf("--list takes no file names, got %q", set.Args())
		}
		return listTrash(stdout, root, down.TrashAge())
	}
	if len(set.Args()) == 0 {
		return fmt.Errorf("name the original to restore, relative to LIBRARY_ROOT (see restore --list, restore --help)")
	}
	var errs []error
	for _, rel := range set.Args() {
		rep, err := library.Restore(root, rel, keep, os.FileMode(down.DirMode))
		if err != nil {
			fmt.Fprintf(stdout, "not restored: %v\n", err)
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(stdout, "restored %s\n", rep.Path)
		switch {
		case rep.ResultRemoved:
			fmt.Fprintf(stdout, "  removed its result %s\n", rep.Result)
		case rep.Result != "":
			fmt.Fprintf(stdout, "  kept its result %s: %s\n", rep.Result, rep.ResultKept)
		default:
			fmt.Fprintf(stdout, "  no result removed: %s\n", rep.ResultKept)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d not restored: %w", len(errs), len(set.Args()), errors.Join(errs...))
	}
	return nil
}

func listTrash(w io.Writer, root string, age time.Duration) error {
	entries, err := library.ListTrash(root)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		fmt.Fprintf(w, "the trash %s is empty\n", library.TrashDir(root))
		return nil
	}
	var total int64
	for _, e := range entries {
		total += e.Size
		when, goes := "unknown", "next purge records it"
		if !e.Trashed.IsZero() {
			when = e.Trashed.Local().Format("2006-01-02 15:04")
			goes = e.Trashed.Add(age).Local().Format("2006-01-02")
		}
		fmt.Fprintf(w, "%s  %9s  removed %s  %s\n", when, progress.Bytes(e.Size), goes, e.Rel)
	}
	fmt.Fprintf(w, "%d original(s), %s in %s\n%s\n", len(entries), progress.Bytes(total), library.TrashDir(root), library.RestoreHint)
	return nil
}
