from cryptocast_inference.main import main

main()
