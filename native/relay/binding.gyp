{
  "targets": [
    {
      "target_name": "relay",
      "sources": ["relay.c", "hello.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lpthread"]
    }
  ]
}
