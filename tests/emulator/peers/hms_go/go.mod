module pushsvc.dev/tests/hmspeer

go 1.22

require github.com/appleboy/go-hms-push v1.0.1
