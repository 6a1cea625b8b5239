package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/launch"
	"github.com/hevc-encoder/hevc-encoder/pkg/launch/ecs"
	"github.com/hevc-encoder/hevc-encoder/pkg/library"
	"github.com/hevc-encoder/hevc-encoder/pkg/queue"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Status is a snapshot of the pipeline's AWS side.
type Status struct {
	Bucket  string       `json:"bucket"`
	Objects ObjectCounts `json:"objects"`
	Work    *QueueStatus `json:"work_queue,omitempty"`
	Results *QueueStatus `json:"results_queue,omitempty"`
	Tasks   *TaskStatus  `json:"tasks,omitempty"`
	Time    time.Time    `json:"time"`

	// Library is the library's history and trash (LIBRARY_ROOT); alone
	// when no bucket is configured (Bucket "").
	Library *LibraryStatus `json:"library,omitempty"`

	// Cost is this month's estimated AWS cost and the budget (cost.go).
	Cost *CostStatus `json:"cost,omitempty"`
}

// ObjectCounts counts the bucket's prefixes.
type ObjectCounts struct {
	Todo   PrefixCount `json:"todo"`
	Done   PrefixCount `json:"done"`
	Failed PrefixCount `json:"failed"`
}

// PrefixCount is the number and total size of objects under a prefix.
type PrefixCount struct {
	Count int   `json:"count"`
	Bytes int64 `json:"bytes"`
}

// QueueStatus is a queue's approximate depth, and its dead-letter queue's.
type QueueStatus struct {
	Name     string     `json:"url"`
	Visible  int        `json:"visible"`
	InFlight int        `json:"in_flight"`
	DLQ      *DepthJSON `json:"dead_letter,omitempty"`
}

// DepthJSON is a queue.Depth with the JSON keys of status --json (snake_case,
// like every other key there).
type DepthJSON struct {
	Visible  int `json:"visible"`
	InFlight int `json:"in_flight"`
}

// TaskStatus lists the running processors.
type TaskStatus struct {
	Running  int       `json:"running"`
	MaxTasks int       `json:"max_tasks"`
	Tasks    []TaskRow `json:"list"`
}

// TaskRow is one running processor.
type TaskRow struct {
	Key              string    `json:"key"`
	ARN              string    `json:"task_arn,omitempty"`
	Status           string    `json:"status,omitempty"`
	CapacityProvider string    `json:"capacity_provider,omitempty"`
	Started          time.Time `json:"started,omitzero"`
}

// taskLister is implemented by launchers that know more than keys (ecs).
type taskLister interface {
	Tasks(ctx context.Context) ([]ecs.Task, error)
}

// CollectStatus gathers the status. work, results and l may be nil (not
// reported).
func CollectStatus(ctx context.Context, st storage.Store, work, results queue.Queue, l launch.Launcher) (Status, error) {
	s := Status{Bucket: st.Bucket(), Time: time.Now().UTC()}
	for _, p := range []struct {
		prefix string
		into   *PrefixCount
	}{{library.TodoPrefix, &s.Objects.Todo}, {library.DonePrefix, &s.Objects.Done}, {library.FailedPrefix, &s.Objects.Failed}} {
		if err := storage.Walk(ctx, st, p.prefix, func(o storage.Object) error {
			p.into.Count++
			p.into.Bytes += o.Size
			return nil
		}); err != nil {
			return s, fmt.Errorf("status: list %s: %w", p.prefix, err)
		}
	}
	var err error
	if s.Work, err = queueStatus(ctx, work); err != nil {
		return s, err
	}
	if s.Results, err = queueStatus(ctx, results); err != nil {
		return s, err
	}
	if l != nil {
		ts := &TaskStatus{MaxTasks: l.Capacity(), Tasks: []TaskRow{}}
		if tl, ok := l.(taskLister); ok {
			tasks, err := tl.Tasks(ctx)
			if err != nil {
				return s, fmt.Errorf("status: running tasks: %w", err)
			}
			for _, t := range tasks {
				ts.Tasks = append(ts.Tasks, TaskRow{Key: t.Key, ARN: t.ARN, Status: t.LastStatus, CapacityProvider: t.CapacityProvider, Started: t.Started})
			}
		} else {
			keys, err := l.InFlight(ctx)
			if err != nil {
				return s, fmt.Errorf("status: running processors: %w", err)
			}
			for k := range keys {
				ts.Tasks = append(ts.Tasks, TaskRow{Key: k, Status: "RUNNING"})
			}
		}
		sort.Slice(ts.Tasks, func(i, j int) bool { return ts.Tasks[i].Key < ts.Tasks[j].Key })
		ts.Running = len(ts.Tasks)
		s.Tasks = ts
	}
	return s, nil
}

func queueStatus(ctx context.Context, q queue.Queue) (*QueueStatus, error) {
	if q == nil {
		return nil, nil
	}
	d, err := q.Depth(ctx)
	if err != nil {
		return nil, fmt.Errorf("status: depth of %s: %w", q.Name(), err)
	}
	qs := &QueueStatus{Name: q.Name(), Visible: d.Visible, InFlight: d.InFlight}
	if r, ok := q.(queue.Redriver); ok {
		if dd, err := r.DeadLetterDepth(ctx); err == nil {
			qs.DLQ = &DepthJSON{Visible: dd.Visible, InFlight: dd.InFlight}
		}
	}
	return qs, nil
}

// WriteJSON writes the status as one indented JSON document.
func (s Status) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if s.Bucket == "" && s.Library != nil {
		// The library alone: no bucket, queue or task keys at all.
		return enc.Encode(struct {
			Library *LibraryStatus `json:"library"`
			Time    time.Time      `json:"time"`
		}{s.Library, s.Time})
	}
	return enc.Encode(s)
}

// WriteTable writes the status as aligned tables.
func (s Status) WriteTable(w io.Writer) error {
	if s.Bucket == "" && s.Library != nil {
		s.Library.writeTable(w, s.Time)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "BUCKET %s\n\n", s.Bucket)
	fmt.Fprintln(tw, "PREFIX\tOBJECTS\tSIZE")
	for _, r := range []struct {
		name string
		c    PrefixCount
	}{{library.TodoPrefix, s.Objects.Todo}, {library.DonePrefix, s.Objects.Done}, {library.FailedPrefix, s.Objects.Failed}} {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", r.name, r.c.Count, humanBytes(r.c.Bytes))
	}
	if s.Work != nil || s.Results != nil {
		fmt.Fprintln(tw, "\nQUEUE\tVISIBLE\tIN FLIGHT\tDLQ VISIBLE\tDLQ IN FLIGHT")
		for _, r := range []struct {
			name string
			q    *QueueStatus
		}{{"work", s.Work}, {"results", s.Results}} {
			if r.q == nil {
				continue
			}
			dv, di := "-", "-"
			if r.q.DLQ != nil {
				dv, di = fmt.Sprint(r.q.DLQ.Visible), fmt.Sprint(r.q.DLQ.InFlight)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", r.name, r.q.Visible, r.q.InFlight, dv, di)
		}
	}
	if s.Tasks != nil {
		limit := "no limit"
		if s.Tasks.MaxTasks > 0 {
			limit = fmt.Sprintf("MAX_TASKS %d", s.Tasks.MaxTasks)
		}
		fmt.Fprintf(tw, "\nRUNNING TASKS %d (%s)\n", s.Tasks.Running, limit)
		if len(s.Tasks.Tasks) > 0 {
			fmt.Fprintln(tw, "KEY\tSTATUS\tCAPACITY\tRUNNING FOR\tTASK")
			for _, t := range s.Tasks.Tasks {
				age := "-"
				if !t.Started.IsZero() {
					age = s.Time.Sub(t.Started).Round(time.Second).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Key, t.Status, dash(t.CapacityProvider), age, dash(lastSegment(t.ARN)))
			}
		}
	}
	s.Cost.writeTable(tw)
	if err := tw.Flush(); err != nil {
		return err
	}
	if s.Library != nil {
		fmt.Fprintln(w)
		s.Library.writeTable(w, s.Time)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func lastSegment(arn string) string {
	if i := strings.LastIndexByte(arn, '/'); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
