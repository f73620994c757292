package notify_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dock/uplink/central/notify"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.hmac", "  north-secret\n", 0o600)
	open := write("open.hmac", "north-secret\n", 0o644)
	pass := write("smtp.pass", "mail-pass\n", 0o400)
	team := `{"name":"north","docks":["dock-1"],"webhook":{"url":"https://hooks.example/n","secret_file":"` + good + `"},"email":{"from":"c@example","to":["m@example"]}}`
	smtp := `"smtp":{"addr":"mail.example:587","username":"central","password_file":"` + pass + `"}`
	for _, tc := range []struct {
		name, json, wantErr string
	}{
		{"good", `{"gather":"5s",` + smtp + `,"teams":[` + team + `]}`, ""},
		{"unknown field", `{"gater":"5s",` + smtp + `,"teams":[` + team + `]}`, "unknown field"},
		{"secret others can read", `{"teams":[{"name":"n","webhook":{"url":"https://h.example/","secret_file":"` + open + `"}}]}`, "mode 0644"},
		{"webhook without secret", `{"teams":[{"name":"n","webhook":{"url":"https://h.example/"}}]}`, "no secret"},
		{"not http", `{"teams":[{"name":"n","webhook":{"url":"file:///etc/passwd","secret_file":"` + good + `"}}]}`, "http or https"},
		{"email without smtp", `{"teams":[{"name":"n","email":{"from":"c@example","to":["m@example"]}}]}`, "no smtp server"},
		{"bad recipient", `{` + smtp + `,"teams":[{"name":"n","email":{"from":"c@example","to":["not an address"]}}]}`, "email to"},
		{"plaintext smtp off loopback", `{"smtp":{"addr":"mail.example:25","security":"none"},"teams":[{"name":"n","email":{"from":"c@example","to":["m@example"]}}]}`, "only to loopback"},
		{"team twice", `{"teams":[` + team + `,` + team + `],` + smtp + `}`, "named twice"},
		{"negative gather", `{"gather":"-1s","teams":[]}`, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := notify.LoadConfig(write(tc.name+".json", tc.json, 0o600))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if string(c.Teams[0].Webhook.Secret) != "north-secret" || c.SMTP.Password != "mail-pass" || c.Gather != notify.Duration(5e9) {
					t.Fatalf("read %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
}
