module github.com/example/kv

go 1.22
