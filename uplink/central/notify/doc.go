// Package notify owns telling maintenance staff of new faults without anyone watching the
// console: per team, a signed JSON webhook and an e-mail over SMTP, one digest per dock per
// gathering window, retried with backoff; it never sends a delivered fault twice on its own.
//
// # What happens to a fault
//
// Central hands every alert a dock sends to Notifier.Observe. A fault is known by its
// dock, its id (device/code) and when the dock raised it: the dock sends the alert again
// until maintenance acknowledges it, and the repeats, also after central restarts, are the
// same fault. A new fault waits for the gathering window (Config.Gather, 10 s by default)
// from the first new fault of its dock; then every fault of that dock heard of meanwhile
// goes out as one message per team and channel (a dock with ten faults sends one message;
// past MaxDigest, 50, further messages carry the rest).
// Each message (a Delivery) is tried until it is taken, with backoff doubling from
// Config.Retry.First to Config.Retry.Max, and given up after Config.Retry.GiveUp or on an
// answer that says trying again cannot help (an HTTP 4xx other than 408, 425 and 429; an
// SMTP 5xx): given up, it is logged at Error. Faults and deliveries live in a Store: what
// was heard but not yet gathered, and what was gathered but not yet taken, survive a
// restart and go out after it; a fault delivered is remembered for Config.Remember (30
// days) so that its repeats send nothing. Delivery is at least once: a crash between the
// peer taking a message and the store recording it sends it again, with the same delivery
// id (the webhook's X-Dock-Delivery header, the e-mail's Message-ID) for the peer to drop.
//
// # The notifications file
//
// The central program reads it with -notifications FILE (JSON, unknown fields refused):
//
//	{
//	  "gather": "10s",                    // the digest's gathering window per dock
//	  "retry": {"first": "2s", "max": "10m", "give_up": "24h"},
//	  "remember": "720h",                 // how long a delivered fault's repeats are ignored
//	  "console_url": "https://central.example:8443",  // linked from each message
//	  "smtp": {
//	    "addr": "mail.example:587",       // host:port of the submission server
//	    "security": "starttls",           // starttls (default), tls (implicit, port 465) or none (loopback only)
//	    "ca_file": "",                    // PEM roots for the server's certificate; the system's if empty
//	    "username": "central",            // SMTP AUTH PLAIN, only over TLS or to loopback
//	    "password_file": "/etc/central/smtp-password",
//	    "hello": "central.example",       // the EHLO name; "localhost" if empty
//	    "timeout": "1m"                   // one attempt at most, connection to QUIT
//	  },
//	  "teams": [{
//	    "name": "north",                  // a dock belongs to the team its running config names
//	    "docks": ["dock-7", "dock-9"],    // and to every team listing it; "*" takes every dock
//	    "webhook": {"url": "https://hooks.example/north", "secret_file": "/etc/central/north.hmac"},
//	    "email": {"from": "central@example", "to": ["north-maintenance@example"]}
//	  }]
//	}
//
// A secret or password file must be readable by its owner only (mode 0600 or stricter);
// its content, without surrounding blanks, is the secret.
//
// # The webhook
//
// A POST of a Message as JSON (Content-Type application/json) with these headers:
//
//	X-Dock-Delivery:  the delivery id, the same on every attempt
//	X-Dock-Timestamp: the attempt's time, Unix seconds
//	X-Dock-Signature: sha256=<hex HMAC-SHA256 under the team's secret of timestamp + "." + body>
//
// A receiver recomputes the HMAC over the timestamp header, a dot and the raw body, compares
// in constant time (Verify does all of it), and refuses a timestamp far from its clock (a
// replay). Any 2xx takes the message; redirects are not followed.
package notify
