module github.com/recall-rl/recall

go 1.26
