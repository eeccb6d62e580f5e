module hello-container

go 1.26
