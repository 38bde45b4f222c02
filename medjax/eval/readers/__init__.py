"""One reader per published benchmark format; each yields `Question`s and names file:line on error."""
