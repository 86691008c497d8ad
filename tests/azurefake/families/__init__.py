"""One module per Azure API family the backend calls; each has `install(fake)`."""
