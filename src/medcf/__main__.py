from medcf.cli import main

main()
