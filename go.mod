module dock

go 1.26.8

require (
	github.com/creack/pty v1.1.24
	github.com/tarm/serial v0.0.0-20180830185346-98f6abe2eb07
	golang.org/x/sys v0.41.0
	periph.io/x/conn/v3 v3.7.3
)

require github.com/jonboulle/clockwork v0.5.0 // indirect
