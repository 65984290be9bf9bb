"""Classroom polls: "guess the next token" rooms a presenter opens and students join by code (in memory only)."""
