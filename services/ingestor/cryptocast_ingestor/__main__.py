from cryptocast_ingestor.main import main

main()
