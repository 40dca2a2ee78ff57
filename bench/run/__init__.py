"""One `bench run`: recipe -> data -> model -> fit -> a results row and a report bundle."""
