package health

import (
	"math"
	"time"
)

// Sample is one docking's battery and storage figures for a device's history.
type Sample struct {
	Time      time.Time `json:"time"`
	HealthPct int       `json:"health_pct"`
	Cycles    int       `json:"cycles"`
	BadBlocks int       `json:"bad_blocks"`
	Errors    int       `json:"errors"`
}

// PredictCrossing fits a line through the history's battery health over time and returns
// when it will fall under threshold. ok is false with fewer than three samples spread over
// at least a day, or when health is not falling.
func PredictCrossing(h []Sample, threshold int) (when time.Time, ok bool) {
	if len(h) < 3 || h[len(h)-1].Time.Sub(h[0].Time) < 24*time.Hour {
		return time.Time{}, false
	}
	t0 := h[0].Time
	var sx, sy, sxx, sxy float64
	for _, s := range h {
		x := s.Time.Sub(t0).Hours()
		y := float64(s.HealthPct)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(h))
	den := n*sxx - sx*sx
	if den == 0 {
		return time.Time{}, false
	}
	slope := (n*sxy - sx*sy) / den // health points per hour
	if slope >= 0 {
		return time.Time{}, false
	}
	icept := (sy - slope*sx) / n
	hours := (float64(threshold) - icept) / slope
	if math.IsNaN(hours) || math.IsInf(hours, 0) {
		return time.Time{}, false
	}
	return t0.Add(time.Duration(hours * float64(time.Hour))), true
}

// LastsShift reports whether a battery holds enough charge for a shift of the given length
// at the camera's draw (mAh per hour of recording).
func LastsShift(b Battery, shift time.Duration, drawMAhPerHour int) bool {
	available := float64(b.FullMAh) * float64(b.ChargePct) / 100
	return available >= float64(drawMAhPerHour)*shift.Hours()
}
