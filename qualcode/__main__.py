from qualcode.cli import main

if __name__ == "__main__":  # a spawned child process (the background refit) imports this module too
    main()
