# /etc/cron.d style: a user that does not exist on this machine, and a zone that does not exist.
0 1 * * * root /usr/local/bin/rotate-logs
0 2 * * * cronfleet-no-such-user /usr/local/bin/cleanup
CRON_TZ=Mars/Olympus_Mons
0 3 * * * root /usr/local/bin/report
