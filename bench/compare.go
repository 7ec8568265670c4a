package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Compare writes two runs side by side: each figure of A and of B and the ratio B/A.
// Lower is better for latencies, loss and errors; higher for rates and success.
func Compare(w io.Writer, a, b *Report, nameA, nameB string) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%s\t%s\tB/A\t\n", nameA, nameB)
	fmt.Fprintf(tw, "scenario\t%s\t%s\t\t\n", a.Scenario, b.Scenario)
	if len(a.Target.Settings)+len(b.Target.Settings) > 0 {
		fmt.Fprintf(tw, "cotd settings\t%s\t%s\t\t\n", orDash(strings.Join(a.Target.Settings, ", ")), orDash(strings.Join(b.Target.Settings, ", ")))
	}
	for _, row := range compareRows(a, b) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", row.name, fmtNum(row.a), fmtNum(row.b), ratio(row.a, row.b))
	}
	fmt.Fprintf(tw, "verdict\t%s\t%s\t\t\n", verdictWord(a.Pass), verdictWord(b.Pass))
	return tw.Flush()
}

type compareRow struct {
	name string
	a, b float64
}

func compareRows(a, b *Report) []compareRow {
	pick := func(name string, f func(*Report) float64) compareRow { return compareRow{name, f(a), f(b)} }
	rows := []compareRow{
		pick("clients", func(r *Report) float64 { return float64(r.Clients.Total) }),
		pick("elapsed s", func(r *Report) float64 { return r.Elapsed }),
		pick("connect success %", func(r *Report) float64 { return round3(r.Connect.SuccessPct) }),
		pick("connect p50 ms", func(r *Report) float64 { return round3(r.Connect.Connect.P50) }),
		pick("connect p99 ms", func(r *Report) float64 { return round3(r.Connect.Connect.P99) }),
		pick("handshake p99 ms", func(r *Report) float64 { return round3(r.Connect.Handshake.P99) }),
		pick("delivery p50 ms", func(r *Report) float64 { return round3(r.Latency.P50) }),
		pick("delivery p90 ms", func(r *Report) float64 { return round3(r.Latency.P90) }),
		pick("delivery p99 ms", func(r *Report) float64 { return round3(r.Latency.P99) }),
		pick("delivery max ms", func(r *Report) float64 { return round3(r.Latency.Max) }),
		pick("deliveries/s", func(r *Report) float64 { return round3(r.Traffic.DeliveriesPerSec) }),
		pick("steady deliveries/s", func(r *Report) float64 { return float64(r.Traffic.SteadyPerSec) }),
		pick("peak deliveries/s", func(r *Report) float64 { return float64(r.Traffic.PeakPerSec) }),
		pick("owed", func(r *Report) float64 { return float64(r.Loss.Owed) }),
		pick("lost", func(r *Report) float64 { return float64(r.Loss.Lost) }),
		pick("loss %", func(r *Report) float64 { return round3(r.Loss.LossPct) }),
		pick("unexpected", func(r *Report) float64 { return float64(r.Unexpected.Total) }),
		pick("errors", func(r *Report) float64 {
			var n int64
			for _, v := range r.Errors {
				n += v
			}
			return float64(n)
		}),
		pick("ping rtt p99 ms", func(r *Report) float64 { return round3(r.Traffic.PingRTT.P99) }),
	}
	if a.Server != nil || b.Server != nil {
		rows = append(rows,
			pick("server max RSS MiB", func(r *Report) float64 {
				return procVal(r.Server, func(p *ProcReport) float64 { return float64(p.MaxRSS) / (1 << 20) })
			}),
			pick("server mean CPU %", func(r *Report) float64 { return procVal(r.Server, func(p *ProcReport) float64 { return p.MeanCPU }) }),
			pick("server max fds", func(r *Report) float64 {
				return procVal(r.Server, func(p *ProcReport) float64 { return float64(p.MaxFDs) })
			}),
			pick("server CPU us/delivery", func(r *Report) float64 {
				if r.Cost == nil {
					return 0
				}
				return r.Cost.MicrosPerDelivery
			}),
		)
	}
	if a.ServerDelay != nil || b.ServerDelay != nil {
		rows = append(rows,
			pick("server delay p50 ms (≤)", func(r *Report) float64 { return delayVal(r, func(d *ServerDelayReport) float64 { return d.P50.LeMs }) }),
			pick("server delay p90 ms (≤)", func(r *Report) float64 { return delayVal(r, func(d *ServerDelayReport) float64 { return d.P90.LeMs }) }),
			pick("server delay p99 ms (≤)", func(r *Report) float64 { return delayVal(r, func(d *ServerDelayReport) float64 { return d.P99.LeMs }) }),
			pick("server delay mean ms", func(r *Report) float64 { return delayVal(r, func(d *ServerDelayReport) float64 { return d.MeanMs }) }),
		)
	}
	rows = append(rows, pick("harness mean CPU %", func(r *Report) float64 { return procVal(r.Harness, func(p *ProcReport) float64 { return p.MeanCPU }) }))
	return rows
}

func procVal(p *ProcReport, f func(*ProcReport) float64) float64 {
	if p == nil {
		return 0
	}
	return round3(f(p))
}

func ratio(a, b float64) string {
	if a == 0 {
		if b == 0 {
			return "="
		}
		return "-"
	}
	return fmt.Sprintf("%.2fx", b/a)
}

func verdictWord(pass bool) string {
	if pass {
		return "PASS"
	}
	return "FAIL"
}
