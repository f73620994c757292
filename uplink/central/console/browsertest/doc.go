// Package browsertest owns the console's browser tests: headless Chromium (Debian's
// chromium) driven from Go through chromedp, as people use the console. Tests only: no
// program links it, and it holds no code but its tests.
package browsertest
