"""knowledge: the shipped facts and the pure checks over them.

Takes the packaged `*.toml` files (every fact with a public `source`); gives a checked, typed
`Knowledge` (`knowledge.load_knowledge`), whether a driver starts a base image (`images`), and the
findings about a resolved target that a resolver cannot know (`lint`).
"""
