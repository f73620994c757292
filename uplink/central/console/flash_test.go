package console

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The message at the top of a page is the console's own: a link someone else made
// (?flash=...) shows nothing, signed in or not; the message of a form just sent does.
func TestFlashOnlyFromTheConsole(t *testing.T) {
	srv, db, cookie := footageConsole(t, "VID_0001.MP4", "footage")
	sess, err := db.Session(cookie.Value)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(req *http.Request) string {
		req.AddCookie(cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	forged := "Your password expired: mail it to it-desk@evil.example"
	for _, path := range []string{"/evidence", "/login", "/evidence?fs=", "/login?fs=", "/login?fs=00"} {
		path, sig, _ := strings.Cut(path, "?")
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path+"?flash="+url.QueryEscape(forged)+"&"+sig, nil)
		body := fetch(req)
		if strings.Contains(body, "it-desk@evil.example") {
			t.Errorf("GET %s shows a message from its link: %q", path, forged)
		}
	}
	form := url.Values{"csrf": {sess.CSRF}, "dock": {"dock-a"}, "recording": {"r1"}, "reason": {"complaint 13"}}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/evidence/request", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if body := fetch(req); !strings.Contains(body, "request 2 recorded") {
		t.Errorf("the console's own message after a request is not shown: %s", body)
	}
}
