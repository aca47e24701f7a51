from lstm_rare_event.cli import main

main()
