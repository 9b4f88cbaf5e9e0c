module gostfast.invalid/refpeer

go 1.19

require (
	github.com/gorilla/websocket v1.5.0
	github.com/xtaci/smux v1.5.16
)
