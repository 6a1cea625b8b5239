// Package cost estimates what the AWS side spends: every processor job
// writes a small record under COSTS/<YYYY-MM>/ (task size × runtime, and
// the bytes of its result, which the downloader fetches once), and the
// month's estimate is the sum of that month's records at prices given in
// configuration. Nothing is looked up on the network: the defaults are the
// prices read on the date in PricesRead, and the user sets their own.
//
// The records outlive the results (removed after download), so the sum
// needs no result. Each record's figures are also in its key (ObjectKey), so the
// month is summed from a listing, one request per thousand jobs, without
// reading the records; a key that does not parse is read.
package cost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/hevc-encoder/hevc-encoder/pkg/config"
	"github.com/hevc-encoder/hevc-encoder/pkg/storage"
)

// Prefix is where the records are kept: COSTS/<YYYY-MM>/<…>.json.
const Prefix = "COSTS/"

// Default prices, and when and where they were read. Fargate Spot's price
// moves with supply and demand (50-70 % below on-demand); these are
// us-east-1 Linux/x86_64 at the 70 % discount (on-demand $0.04048 per
// vCPU-hour, $0.004445 per GB-hour). ARM64 (the terraform default) costs
// 20 % less on demand, so for it these err high, the safe side for a
// budget. S3 transfer out to the internet: the first 10 TB tier, without
// the 100 GB a month AWS gives free.
const (
	DefaultVCPUHour      = 0.012144
	DefaultGBHour        = 0.0013335
	DefaultTransferOutGB = 0.09
	PricesRead           = "us-east-1 prices read 2026-12-04 (Fargate Spot x86_64, S3 transfer out first 10 TB)"
)

// MinBilled is Fargate's minimum charge per task: per second, at least a
// minute.
const MinBilled = time.Minute

// Prices are the prices in USD.
type Prices struct {
	VCPUHour      float64 // Fargate Spot, per vCPU-hour
	GBHour        float64 // Fargate Spot, per GB of memory per hour
	TransferOutGB float64 // S3 data transfer out to the internet, per GB
}

// DefaultPrices are the prices of PricesRead.
func DefaultPrices() Prices {
	return Prices{VCPUHour: DefaultVCPUHour, GBHour: DefaultGBHour, TransferOutGB: DefaultTransferOutGB}
}

// Bind registers FARGATE_SPOT_VCPU_HOUR, FARGATE_SPOT_GB_HOUR and
// S3_TRANSFER_OUT_GB.
func (p *Prices) Bind(s *config.Set) {
	d := DefaultPrices()
	for _, v := range []struct {
		into      *float64
		env       string
		what      string
		defaultTo float64
	}{
		{&p.VCPUHour, "FARGATE_SPOT_VCPU_HOUR", "USD per vCPU-hour of Fargate Spot, for the cost estimate", d.VCPUHour},
		{&p.GBHour, "FARGATE_SPOT_GB_HOUR", "USD per GB-hour of Fargate Spot memory, for the cost estimate", d.GBHour},
		{&p.TransferOutGB, "S3_TRANSFER_OUT_GB", "USD per GB of S3 transfer out (results downloaded home), for the cost estimate", d.TransferOutGB},
	} {
		var raw string
		s.String(&raw, v.env, strconv.FormatFloat(v.defaultTo, 'f', -1, 64), v.what+" (default: "+PricesRead+")")
		s.Check(func() error {
			f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
			if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
				return fmt.Errorf("%s must be a price in USD (a number, 0 or more), got %q", v.env, raw)
			}
			*v.into = f
			return nil
		})
	}
}

// TaskSize is the processor task's size, from the task definition
// (TASK_VCPU, TASK_MEMORY_GIB, which terraform sets from processor_cpu and
// processor_memory). Zero means unknown: no cost is recorded.
type TaskSize struct {
	VCPU      float64
	MemoryGiB float64
}

// Bind registers TASK_VCPU and TASK_MEMORY_GIB.
func (t *TaskSize) Bind(s *config.Set) {
	var cpu, mem string
	s.String(&cpu, "TASK_VCPU", "", "vCPUs of this processor task (set by the ECS task definition); with TASK_MEMORY_GIB, each job records its vCPU- and GB-seconds for the cost estimate; empty records nothing")
	s.String(&mem, "TASK_MEMORY_GIB", "", "memory in GiB of this processor task (set by the ECS task definition)")
	s.Check(func() error {
		if (cpu == "") != (mem == "") {
			return fmt.Errorf("TASK_VCPU and TASK_MEMORY_GIB go together: set both or neither")
		}
		if cpu == "" {
			return nil
		}
		var err error
		if t.VCPU, err = strconv.ParseFloat(cpu, 64); err != nil || t.VCPU <= 0 || t.VCPU > 1024 {
			return fmt.Errorf("TASK_VCPU must be a number of vCPUs like 4 or 0.25, got %q", cpu)
		}
		if t.MemoryGiB, err = strconv.ParseFloat(mem, 64); err != nil || t.MemoryGiB <= 0 || t.MemoryGiB > 4096 {
			return fmt.Errorf("TASK_MEMORY_GIB must be a number of GiB like 8 or 0.5, got %q", mem)
		}
		return nil
	})
}

// Known reports whether the size was given.
func (t TaskSize) Known() bool { return t.VCPU > 0 && t.MemoryGiB > 0 }

// Record is one job's cost record.
type Record struct {
	Key     string    `json:"key"`     // the job's TODO/ key
	Outcome string    `json:"outcome"` // done, no-gain, failed, retry, interrupted, …
	Time    time.Time `json:"time"`    // when the job ended
	// Seconds is the measured runtime of the task, from the processor's
	// start to the record (image pull and provisioning, which AWS also
	// bills, happen before and are not seen).
	Seconds   float64 `json:"seconds"`
	VCPU      float64 `json:"vcpu"`
	MemoryGiB float64 `json:"memory_gib"`
	// VCPUSeconds and GBSeconds are what Fargate bills: task size ×
	// runtime, at least MinBilled.
	VCPUSeconds float64 `json:"vcpu_seconds"`
	GBSeconds   float64 `json:"gb_seconds"`
	// ResultBytes is the size of the DONE/ result (0 without one): the
	// downloader fetches it once, which is S3 transfer out.
	ResultBytes int64 `json:"result_bytes"`
}

// NewRecord is the record of a job of size t that ran for runtime.
func NewRecord(key, outcome string, end time.Time, runtime time.Duration, t TaskSize, resultBytes int64) Record {
	billed := max(runtime, MinBilled).Seconds()
	return Record{
		Key: key, Outcome: outcome, Time: end.UTC(), Seconds: round3(runtime.Seconds()),
		VCPU: t.VCPU, MemoryGiB: t.MemoryGiB,
		VCPUSeconds: round3(t.VCPU * billed), GBSeconds: round3(t.MemoryGiB * billed),
		ResultBytes: resultBytes,
	}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// Month is the prefix of the records of t's calendar month (UTC).
func Month(t time.Time) string { return Prefix + t.UTC().Format("2006-01") + "/" }

// ObjectKey is where r is stored: COSTS/<YYYY-MM>/<time>-<random>.v<vCPU
// milliseconds>.g<GB milliseconds>.b<result bytes>.json. The random part
// keeps two records of the same instant (retries of one key) apart; the
// figures let a listing alone be summed.
func (r Record) ObjectKey() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%s-%s.v%d.g%d.b%d.json", Month(r.Time), r.Time.UTC().Format("20060102T150405.000Z"),
		hex.EncodeToString(b[:]), int64(math.Round(r.VCPUSeconds*1000)), int64(math.Round(r.GBSeconds*1000)), r.ResultBytes)
}

// parseKey reads the figures from a record's key.
func parseKey(key string) (Usage, bool) {
	name := strings.TrimSuffix(path.Base(key), ".json")
	parts := strings.Split(name, ".")
	if len(parts) < 4 {
		return Usage{}, false
	}
	parts = parts[len(parts)-3:]
	var n [3]int64
	for i, p := range parts {
		if len(p) < 2 || p[0] != "vgb"[i] {
			return Usage{}, false
		}
		v, err := strconv.ParseInt(p[1:], 10, 64)
		if err != nil || v < 0 {
			return Usage{}, false
		}
		n[i] = v
	}
	return Usage{Jobs: 1, VCPUSeconds: float64(n[0]) / 1000, GBSeconds: float64(n[1]) / 1000, ResultBytes: n[2]}, true
}

// Write stores r under COSTS/. Records are small and written once; an
// error is the caller's to log (a missing record makes the estimate low,
// it loses no data).
func Write(ctx context.Context, st storage.Store, r Record) (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	key := r.ObjectKey()
	if _, err := st.Put(ctx, key, strings.NewReader(string(b)), storage.PutOptions{Size: int64(len(b))}); err != nil {
		return key, fmt.Errorf("write cost record %s: %w", key, err)
	}
	return key, nil
}

// Usage sums records.
type Usage struct {
	Jobs        int     `json:"jobs"`
	VCPUSeconds float64 `json:"vcpu_seconds"`
	GBSeconds   float64 `json:"gb_seconds"`
	ResultBytes int64   `json:"result_bytes"`
}

func (u *Usage) add(o Usage) {
	u.Jobs += o.Jobs
	u.VCPUSeconds += o.VCPUSeconds
	u.GBSeconds += o.GBSeconds
	u.ResultBytes += o.ResultBytes
}

// Estimate is a month's usage priced.
type Estimate struct {
	Month    string  `json:"month"` // YYYY-MM (UTC)
	Usage    Usage   `json:"usage"`
	Compute  float64 `json:"compute_usd"`  // Fargate Spot vCPU and memory
	Transfer float64 `json:"transfer_usd"` // S3 transfer out of the results
	Total    float64 `json:"total_usd"`
	Prices   Prices  `json:"prices"`
}

// Price prices u.
func (p Prices) Price(month string, u Usage) Estimate {
	e := Estimate{Month: month, Usage: u, Prices: p}
	e.Compute = u.VCPUSeconds/3600*p.VCPUHour + u.GBSeconds/3600*p.GBHour
	e.Transfer = float64(u.ResultBytes) / 1e9 * p.TransferOutGB
	e.Total = e.Compute + e.Transfer
	return e
}

// MarshalJSON keeps the price keys snake_case like the rest of status --json.
func (p Prices) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		VCPUHour      float64 `json:"fargate_spot_vcpu_hour"`
		GBHour        float64 `json:"fargate_spot_gb_hour"`
		TransferOutGB float64 `json:"s3_transfer_out_gb"`
	}{p.VCPUHour, p.GBHour, p.TransferOutGB})
}

// MonthUsage sums the records of now's calendar month (UTC).
func MonthUsage(ctx context.Context, st storage.Store, now time.Time) (Usage, error) {
	var u Usage
	prefix := Month(now)
	err := storage.Walk(ctx, st, prefix, func(o storage.Object) error {
		if got, ok := parseKey(o.Key); ok {
			u.add(got)
			return nil
		}
		got, err := read(ctx, st, o.Key)
		if err != nil {
			return err
		}
		u.add(got)
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("sum cost records under %s: %w", prefix, err)
	}
	return u, nil
}

// MonthEstimate prices the month of now.
func MonthEstimate(ctx context.Context, st storage.Store, p Prices, now time.Time) (Estimate, error) {
	u, err := MonthUsage(ctx, st, now)
	return p.Price(now.UTC().Format("2006-01"), u), err
}

func read(ctx context.Context, st storage.Store, key string) (Usage, error) {
	r, _, err := st.Get(ctx, key)
	if err != nil {
		return Usage{}, fmt.Errorf("read cost record %s: %w", key, err)
	}
	defer r.Close()
	var rec Record
	if err := json.NewDecoder(io.LimitReader(r, 1<<16)).Decode(&rec); err != nil {
		// Not ours, or damaged: it counts for nothing rather than
		// stopping every estimate.
		return Usage{}, nil
	}
	return Usage{Jobs: 1, VCPUSeconds: rec.VCPUSeconds, GBSeconds: rec.GBSeconds, ResultBytes: rec.ResultBytes}, nil
}
