package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumBinary finds Debian's chromium (or another Chromium build on PATH).
func chromiumBinary() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH (Debian: apt-get install chromium; .ci/run and build/deps.sh install it)")
}

// startBrowser starts headless Chromium for the test, talking to it over a pipe, with a new
// empty profile and nothing that reaches beyond loopback. Where Chromium cannot start the
// test is skipped, saying why; under CI a missing chromium fails it (CI installs it).
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	bin, err := chromiumBinary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skipf("skipping: %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root here; the sandbox refuses root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	// The first action starts the browser, which lives as long as the context it ran on:
	// bctx itself, cancelled if Chromium has not come up within a minute.
	watchdog := time.AfterFunc(time.Minute, cancelBrowser)
	err = chromedp.Do(bctx, chromedp.Navigate("about:blank"))
	watchdog.Stop()
	if err != nil {
		t.Skipf("skipping: chromium (%s) cannot start here: %v", bin, err)
	}
	return bctx
}

// person is one person at the console: a browser context of their own (cookies and
// storage apart from everyone else's) in the test's browser.
type person struct {
	t    *testing.T
	name string
	ctx  context.Context
	base string // the console's URL
}

// newPerson opens a browser context for name.
func newPerson(t *testing.T, browser context.Context, base, name string) *person {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &person{t: t, name: name, ctx: ctx, base: strings.TrimSuffix(base, "/")}
	// The tab lives as long as the context its first action ran on: ctx itself (an
	// action under a timeout of its own would close it on return).
	watchdog := time.AfterFunc(20*time.Second, cancel)
	defer watchdog.Stop()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	return p
}

// do runs steps within 20 s, failing the test with what was being done.
func (p *person) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		lctx, cancel := context.WithTimeout(p.ctx, 3*time.Second)
		defer cancel()
		loc, _ := chromedp.Run(lctx, chromedp.Location())
		p.t.Fatalf("%s: %s: %v (at %s)", p.name, what, err, loc)
	}
}

// text is the visible text of the first element sel selects (CSS).
func (p *person) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("%s: text of %s: %v", p.name, sel, err)
	}
	return s
}

// eval runs JavaScript in the page and returns its result.
func eval[T any](p *person, js string, opts ...chromedp.EvaluateOption) T {
	p.t.Helper()
	v, err := tryEval[T](p, js, opts...)
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, js, err)
	}
	return v
}

// tryEval is eval that returns its error (a page navigating away, say).
func tryEval[T any](p *person, js string, opts ...chromedp.EvaluateOption) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js, opts...))
}

// click clicks the element sel selects (CSS) and waits for the page it leads to.
func (p *person) click(what, sel string) {
	p.t.Helper()
	p.do(what+": mark the page", chromedp.Evaluate[chromedp.Void]("window.__leaving = 1"))
	p.do(what, chromedp.Click(chromedp.CSS(sel)))
	deadline := time.Now().Add(20 * time.Second)
	for {
		if arrived, err := tryEval[bool](p, `window.__leaving === undefined && document.readyState === "complete"`); err == nil && arrived {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s: no new page after 20 s", p.name, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// type_ replaces the value of the field sel selects (CSS) with text, typed.
func (p *person) type_(sel, text string) {
	p.t.Helper()
	q, _ := json.Marshal(sel)
	p.do("type into "+sel, chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf("document.querySelector(%s).value = ''", q)),
		chromedp.SendKeys(chromedp.CSS(sel), text))
}

// waitJS reloads path until the JavaScript js says true, or fails after timeout; it
// returns how long that took.
func (p *person) waitJS(path, js string, timeout time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	for {
		p.open(path)
		if ok, err := tryEval[bool](p, js); err == nil && ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			p.t.Fatalf("%s: on %s, %s is not true after %v; the page says:\n%s", p.name, path, js, timeout, p.text("main"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// open navigates to a path of the console.
func (p *person) open(path string) {
	p.t.Helper()
	p.do("open "+path, chromedp.Navigate(p.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

// waitFor reloads path until the page's body says want, or fails after timeout; it
// returns how long that took.
func (p *person) waitFor(path, want string, timeout time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	for {
		p.open(path)
		if body := p.text("body"); strings.Contains(body, want) {
			return time.Since(start)
		} else if time.Since(start) > timeout {
			p.t.Fatalf("%s: %s does not say %q after %v; it says:\n%s", p.name, path, want, timeout, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// status is the HTTP status of the page last opened, as the browser saw it.
func (p *person) statusOf(path string) int64 {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(p.base+path))
	if err != nil {
		p.t.Fatalf("%s: open %s: %v", p.name, path, err)
	}
	return resp.Status
}

// login signs in through the console's form (#user, #password, #signin).
func (p *person) login(user, password string) {
	p.t.Helper()
	p.open("/login")
	p.type_("#user", user)
	p.type_("#password", password)
	p.click("sign in as "+user, "#signin")
}

// screenshotDir is where the screenshots go: build/out/console/ of the repository.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = up
	}
	out := filepath.Join(dir, "build", "out", "console")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

// screenshot writes the whole page as build/out/console/<name>.png and returns its path.
func (p *person) screenshot(name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		p.t.Fatalf("%s: screenshot %s: %v", p.name, name, err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		p.t.Fatalf("%s: screenshot %s is no PNG: %v", p.name, name, err)
	}
	path := filepath.Join(screenshotDir(p.t), name+".png")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot %s", path)
	return path
}

func (p *person) String() string { return fmt.Sprintf("%s at %s", p.name, p.base) }
