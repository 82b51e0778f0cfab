"""Real labelled data: readers looked up by name, and the tensor transforms models expect."""
