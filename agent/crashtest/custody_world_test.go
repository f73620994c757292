package crashtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"dock/board/sim"
)

// The custody test's world: the cameras it made, every version of every file it ever put
// on one (the ground truth the invariant is checked against), and the random scenario of
// a run, all drawn from one seed.

const (
	custodyChunk = 64 << 10 // the chunk size central grants in the custody test
	custodyMiB   = 1 << 20
	// custodyBudget caps the footage of one run, so that a run takes seconds.
	custodyBudget = 3 * custodyMiB
)

// version is one file version the test put on a camera: custody of exactly these bytes,
// under this camera and officer, is what the test checks.
type version struct {
	Serial, Name, Officer string
	Size                  int64
	SHA                   string
	Why                   string // the awkward case it stands for
	Gen                   int    // 1: the original; 2, 3: the name reused after a format
	Start                 time.Time

	data   []byte // until it is put on the camera
	placed bool
}

func (v *version) String() string {
	return fmt.Sprintf("%s/%q (gen %d, %d bytes, sha256 %s, officer %s, %s)", v.Serial, v.Name, v.Gen, v.Size, short(v.SHA), v.Officer, v.Why)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// camPlan is one camera of the scenario.
type camPlan struct {
	Serial, Officer string
	ReadRate        int64 // bytes per second the camera's storage delivers (0: no cap)
	dir             string
	slot            int // where docksim has it seated, -1 when out
}

func (c *camPlan) footage() string { return filepath.Join(c.dir, "footage") }

// scenario is everything a seed decides before the run starts.
type scenario struct {
	Seed     uint64
	Cams     []*camPlan
	Versions []*version // every version, in the order they are put on cameras
	// Reuses are versions to put on a camera once the earlier version of that name has
	// left it (the camera was "formatted" and the name came round again).
	Reuses      []*version
	CentralRate int64 // central's granted upload rate, bytes per second (0: no cap)
	Actions     []action
	Chaos       time.Duration
}

type actionKind int

const (
	actDock actionKind = iota
	actUndock
	actKillAgent
	actKillCentral
	actKillBoth
	actReuse
)

func (k actionKind) String() string {
	return [...]string{"dock", "undock", "kill agent", "kill central", "kill both", "reuse a name"}[k]
}

// action is one disturbance at a moment of the chaos phase.
type action struct {
	At   time.Duration
	Kind actionKind
	Cam  int      // dock, undock
	V    *version // reuse
}

// newScenario draws a run from seed: 2-4 cameras with awkward footage (at most
// custodyBudget bytes in all), the name reuses, and the timeline of docks, undocks and kills
// (kills of them, or 2-4 drawn from the seed when kills < 0).
func newScenario(seed uint64, kills int) *scenario {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	sc := &scenario{Seed: seed}
	if k := 2 + rng.IntN(3); kills < 0 {
		kills = k
	}
	nCams := 2 + rng.IntN(3)
	base := fmt.Sprintf("BC%02d", rng.IntN(100))
	collide := rng.IntN(4) != 0 // most runs hold a pair of cameras whose ids can collide
	piece := []string{"X", "2024", "A1", "VID"}[rng.IntN(4)]
	for i := 0; i < nCams; i++ {
		serial := fmt.Sprintf("%s%c", base, 'A'+i)
		if i == 1 && collide {
			serial = sc.Cams[0].Serial + "_" + piece
		}
		c := &camPlan{Serial: serial, Officer: fmt.Sprintf("OF-%d-%03d", i, rng.IntN(1000)), slot: -1}
		if rng.IntN(2) == 0 {
			c.ReadRate = int64(512<<10) << rng.IntN(4) // 0.5 to 4 MiB/s: copies take a moment
		}
		sc.Cams = append(sc.Cams, c)
	}
	if rng.IntN(2) == 0 {
		sc.CentralRate = int64(512<<10) << rng.IntN(3)
	}

	budget := int64(custodyBudget)
	start := time.Date(2025, 3, 14, 8, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(1000)) * time.Hour)
	seq := 0
	add := func(c *camPlan, name string, data []byte, why string) *version {
		seq++
		sum := sha256.Sum256(data)
		v := &version{Serial: c.Serial, Name: name, Officer: c.Officer, Size: int64(len(data)), SHA: hex.EncodeToString(sum[:]),
			Why: why, Gen: 1, Start: start.Add(time.Duration(seq) * 17 * time.Minute), data: data}
		sc.Versions = append(sc.Versions, v)
		budget -= v.Size
		return v
	}
	names := map[string]map[string]bool{}
	for _, c := range sc.Cams {
		names[c.Serial] = map[string]bool{}
	}
	fresh := func(c *camPlan, name string) string {
		for names[c.Serial][name] {
			name = "1" + name
		}
		names[c.Serial][name] = true
		return name
	}
	size := func() (int64, string) {
		for {
			var n int64
			var why string
			switch rng.IntN(9) {
			case 0:
				n, why = 0, "0 bytes"
			case 1:
				n, why = 1, "1 byte"
			case 2, 3, 4:
				k, d := 1+rng.Int64N(3), rng.Int64N(3)-1
				n, why = k*custodyChunk+d, fmt.Sprintf("%d chunks %+d", k, d)
			case 5:
				d := rng.Int64N(3) - 1
				n, why = custodyMiB+d, fmt.Sprintf("1 MiB %+d", d)
			case 6:
				n, why = custodyChunk*8+rng.Int64N(3)-1, "a window of chunks ±1"
			default:
				n, why = rng.Int64N(3*custodyChunk), "random size"
			}
			if n <= budget/3 || n < 2 {
				return n, why
			}
		}
	}
	awkward := []string{
		"VID 0001.mp4", "Zeugenaussage ä ö ü.mp4", "証拠 録画.mp4", "🚓 pursuit #2.mp4", "ΑΒΓ δ.mp4",
		"-rf.mp4", "two  spaces .mp4", "a b.mp4", "a-b.mp4", "a_b.mp4", "VID_0001.mp4",
		"name.with.dots.mp4", "ends with space .mp4", "percent %d %s.mp4", "quote ' \" `.mp4", "x",
		// DCF folders: a name is a relative path, and the same file name in two folders, or
		// the path with its slashes made dashes, are other recordings.
		"DCIM/100MEDIA/VID_0001.MP4", "DCIM/101MEDIA/VID_0001.MP4", "DCIM-100MEDIA-VID_0001.MP4", "DCIM/100MEDIA/证据 1.MP4",
	}

	// The collision: camera A's "<piece>_<rest>" and camera A_<piece>'s "<rest>" are both
	// "A_<piece>_<rest>" once joined with the serial; same size, different bytes.
	if collide {
		n, why := size()
		if n == 0 {
			n = custodyChunk + 1
		}
		rest := fmt.Sprintf("VID_%04d.mp4", rng.IntN(10000))
		a := randBytes(rng, n)
		add(sc.Cams[0], fresh(sc.Cams[0], piece+"_"+rest), a, "id collision with "+sc.Cams[1].Serial+"/"+rest+", "+why)
		add(sc.Cams[1], fresh(sc.Cams[1], rest), otherBytes(rng, a), "id collision with "+sc.Cams[0].Serial+"/"+piece+"_"+rest+", "+why)
	}
	// The same name and size on two cameras, different bytes.
	if rng.IntN(2) == 0 {
		n, why := size()
		a := randBytes(rng, n)
		add(sc.Cams[0], fresh(sc.Cams[0], "SAME_NAME.mp4"), a, "same name on two cameras, "+why)
		add(sc.Cams[len(sc.Cams)-1], fresh(sc.Cams[len(sc.Cams)-1], "SAME_NAME.mp4"), otherBytes(rng, a), "same name on two cameras, "+why)
	}
	// Every run holds an empty recording somewhere.
	zc := sc.Cams[rng.IntN(nCams)]
	add(zc, fresh(zc, []string{"EMPTY.mp4", "VID_0000.mp4", "空 .mp4"}[rng.IntN(3)]), nil, "0 bytes")
	for _, c := range sc.Cams {
		for k := 1 + rng.IntN(4); k > 0 && budget > 0; k-- {
			n, why := size()
			name := fmt.Sprintf("VID_%04d.mp4", rng.IntN(10000))
			if rng.IntN(2) == 0 {
				name = awkward[rng.IntN(len(awkward))]
				why += ", awkward name"
			}
			data := randBytes(rng, n)
			add(c, fresh(c, name), data, why)
			if rng.IntN(3) == 0 && n > 0 {
				// A twin on the same camera: same size, different bytes (one byte apart).
				add(c, fresh(c, "twin of "+name), otherBytes(rng, data), "same size, one byte apart, "+why)
			}
		}
	}
	// Names that come round again after a format: same name, same size, other bytes.
	for k := 1 + rng.IntN(2); k > 0; k-- {
		var cands []*version
		for _, v := range sc.Versions {
			if v.Size > 0 && v.Gen == 1 && !reused(sc.Reuses, v) {
				cands = append(cands, v)
			}
		}
		if len(cands) == 0 {
			break
		}
		old := cands[rng.IntN(len(cands))]
		prev := old
		for gen := 2; gen <= 2+rng.IntN(2) && budget >= old.Size; gen++ {
			data := otherBytes(rng, prev.data)
			sum := sha256.Sum256(data)
			v := &version{Serial: old.Serial, Name: old.Name, Officer: old.Officer, Size: old.Size, SHA: hex.EncodeToString(sum[:]),
				Why: "name reused after a format, same size, other bytes, " + old.Why, Gen: gen, Start: old.Start.Add(time.Duration(gen) * 24 * time.Hour), data: data}
			sc.Reuses = append(sc.Reuses, v)
			budget -= v.Size
			prev = v
		}
	}

	// The timeline: at first a random set of cameras (at least one) is seated; then docks,
	// undocks, reuses and kills at random moments.
	sc.Chaos = time.Duration(5000+rng.IntN(5000)) * time.Millisecond
	first := rng.IntN(nCams)
	for i := range sc.Cams {
		if i == first || rng.IntN(2) == 0 {
			sc.Actions = append(sc.Actions, action{At: 0, Kind: actDock, Cam: i})
		} else {
			sc.Actions = append(sc.Actions, action{At: rnd(rng, sc.Chaos), Kind: actDock, Cam: i})
		}
	}
	for k := 2 + rng.IntN(4); k > 0; k-- {
		i := rng.IntN(nCams)
		at := rnd(rng, sc.Chaos)
		sc.Actions = append(sc.Actions, action{At: at, Kind: actUndock, Cam: i},
			action{At: at + time.Duration(rng.IntN(1500))*time.Millisecond, Kind: actDock, Cam: i})
	}
	for _, v := range sc.Reuses {
		sc.Actions = append(sc.Actions, action{At: rnd(rng, sc.Chaos), Kind: actReuse, V: v})
	}
	for k := 0; k < kills; k++ {
		kind := actKillAgent
		switch r := rng.IntN(4); {
		case r == 2:
			kind = actKillCentral
		case r == 3:
			kind = actKillBoth
		}
		sc.Actions = append(sc.Actions, action{At: 300*time.Millisecond + rnd(rng, sc.Chaos-300*time.Millisecond), Kind: kind})
	}
	sort.SliceStable(sc.Actions, func(i, j int) bool { return sc.Actions[i].At < sc.Actions[j].At })
	return sc
}

func reused(rs []*version, v *version) bool {
	for _, r := range rs {
		if r.Serial == v.Serial && r.Name == v.Name {
			return true
		}
	}
	return false
}

func rnd(rng *rand.Rand, d time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(d)))
}

func randBytes(rng *rand.Rand, n int64) []byte {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 8 {
		v := rng.Uint64()
		for k := 0; k < 8 && i+k < len(b); k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// otherBytes returns bytes of a's length that differ from a: sometimes entirely, sometimes
// in one byte only (at the start, the end, or a chunk boundary), which a check of a prefix,
// a suffix or the size alone cannot tell apart.
func otherBytes(rng *rand.Rand, a []byte) []byte {
	b := randBytes(rng, int64(len(a)))
	if len(a) == 0 {
		return b
	}
	if rng.IntN(2) == 0 {
		copy(b, a)
		at := []int{0, len(a) - 1, min(custodyChunk, len(a)-1), rng.IntN(len(a))}[rng.IntN(4)]
		b[at] ^= byte(1 + rng.IntN(255))
	}
	if string(b) == string(a) {
		b[0] ^= 0xff
	}
	return b
}

// describe is the scenario in a few lines, for the log.
func (sc *scenario) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d cameras, central rate %d B/s, chaos %v\n", len(sc.Cams), sc.CentralRate, sc.Chaos)
	for _, c := range sc.Cams {
		fmt.Fprintf(&b, "  camera %s officer %s read rate %d B/s\n", c.Serial, c.Officer, c.ReadRate)
	}
	var total int64
	for _, v := range append(append([]*version{}, sc.Versions...), sc.Reuses...) {
		fmt.Fprintf(&b, "  file %s\n", v)
		total += v.Size
	}
	fmt.Fprintf(&b, "  %d file versions, %d bytes\n", len(sc.Versions)+len(sc.Reuses), total)
	for _, a := range sc.Actions {
		fmt.Fprintf(&b, "  at %6v %s", a.At.Round(time.Millisecond), a.Kind)
		switch a.Kind {
		case actDock, actUndock:
			fmt.Fprintf(&b, " %s", sc.Cams[a.Cam].Serial)
		case actReuse:
			fmt.Fprintf(&b, " %s/%q gen %d", a.V.Serial, a.V.Name, a.V.Gen)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// makeCameras creates the cameras under dir/cameras and puts every first version on them.
func (sc *scenario) makeCameras(dir string) error {
	for _, c := range sc.Cams {
		c.dir = filepath.Join(dir, "cameras", c.Serial)
		st := sim.DefaultCamera(c.Serial, c.Officer, "unit-1")
		st.ReadRate = c.ReadRate
		if _, err := sim.NewCamera(c.dir, st); err != nil {
			return err
		}
	}
	for _, v := range sc.Versions {
		if err := sc.put(v); err != nil {
			return err
		}
	}
	return nil
}

func (sc *scenario) cam(serial string) *camPlan {
	for _, c := range sc.Cams {
		if c.Serial == serial {
			return c
		}
	}
	return nil
}

// put writes a version onto its camera (whose docksim copy must not be live: the camera is
// out of the dock or docksim is down) and records it in the camera's own index.
func (sc *scenario) put(v *version) error {
	c := sc.cam(v.Serial)
	path := filepath.Join(c.footage(), filepath.FromSlash(v.Name))
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("put %s: the camera still holds a file of that name", v)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, v.data, 0o644); err != nil {
		return err
	}
	cam, err := sim.OpenCamera(c.dir)
	if err != nil {
		return err
	}
	if err := cam.Update(func(st *sim.CameraState) {
		st.Files[v.Name] = sim.FileMeta{Start: v.Start, End: v.Start.Add(10 * time.Minute)}
	}); err != nil {
		return err
	}
	v.placed, v.data = true, nil
	if v.Gen > 1 {
		sc.Versions = append(sc.Versions, v)
	}
	return nil
}
