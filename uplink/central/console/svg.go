package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"dock/uplink/central/fleet"
)

// sohPlot draws a camera's battery state of health over time as an SVG line, server-side
// (no script, no CDN): x is time from the first sample to the last, y 0-100 %, with the
// service threshold (limit, %) dashed.
func sohPlot(h []fleet.HealthSample, limit int) template.HTML {
	const w, ht, pad = 320.0, 110.0, 24.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="soh" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="battery state of health">`, w, ht, w, ht)
	fmt.Fprintf(&b, `<rect x="%.0f" y="4" width="%.0f" height="%.0f" fill="#fff" stroke="#c5ccd3"/>`, pad, w-pad-4, ht-pad)
	y := func(pct int) float64 { return 4 + (ht-pad)*(1-float64(min(max(pct, 0), 100))/100) }
	for _, p := range []int{0, 50, 100} {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="9" text-anchor="end" fill="#68737d">%d%%</text>`, pad-2, y(p)+3, p)
	}
	if limit > 0 {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#b3261e" stroke-dasharray="4 3"/>`, pad, w-4, y(limit), y(limit))
	}
	if len(h) == 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11" fill="#68737d">no samples yet</text>`, pad+8, ht/2)
	} else {
		t0, t1 := h[0].Time, h[len(h)-1].Time
		span := t1.Sub(t0)
		x := func(t time.Time) float64 {
			if span <= 0 {
				return pad + (w-pad-4)/2
			}
			return pad + 4 + (w-pad-12)*float64(t.Sub(t0))/float64(span)
		}
		var pts []string
		for _, s := range h {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.Time), y(s.HealthPct)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="#1f3a5f" stroke-width="2" points="%s"/>`, strings.Join(pts, " "))
		for _, s := range h {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="#1f3a5f"><title>%s: %d%%</title></circle>`, x(s.Time), y(s.HealthPct), s.Time.UTC().Format("2006-01-02 15:04"), s.HealthPct)
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="9" fill="#68737d">%s</text>`, pad, ht-6, t0.UTC().Format("2006-01-02"))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="9" text-anchor="end" fill="#68737d">%s</text>`, w-4, ht-6, t1.UTC().Format("2006-01-02"))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // numbers and fixed formats only: nothing from a dock is written unescaped
}
