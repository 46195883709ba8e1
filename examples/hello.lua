-- The smallest program: prints a greeting from the embedded host.
print("hello from " .. _VERSION .. " in darksidesync-host")
