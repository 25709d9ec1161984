"""Runs the real services for tests and benchmarks.

Each service is a real process on a free loopback port: a private PostgreSQL
cluster (`postgres`), db-api (`db_api`), the llama.cpp server with the real model
(`llama`), chat-ui (`chat_ui`) and nginx (`nginx`), started and stopped through
`processes`. `factories` and `forms` talk to them over HTTP: db-api's headers and
test data, and chat-ui's forms with JavaScript off. Nothing here depends on pytest;
the test session's fixtures (tests/support/) and the benchmarks (bench/) both build
on it.
"""
