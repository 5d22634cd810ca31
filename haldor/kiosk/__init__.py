"""The caretaker's screen: a small web server that reads the agent's database and
the status the agent pushes to it. It never touches a lock."""
