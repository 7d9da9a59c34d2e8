from cryptocast_gateway.main import main

main()
