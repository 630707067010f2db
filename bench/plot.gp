# plot.gp: one PNG of a figure against concurrency, one line per server.
# Called by bench/compare.py as
#   gnuplot -e "datafile='X.dat'; outfile='X.png'; ncols=N; plottitle='T'; ylabel='Y'; logy=0|1" plot.gp
# X.dat: a header line "clients SERVER..." then one row per client count;
# '?' marks a run that is missing.
set terminal pngcairo size 900,560 noenhanced font ",11"
set output outfile
set title plottitle
set datafile missing '?'
set key outside right top title 'server'
set logscale x 10
set xlabel 'concurrent clients'
set ylabel ylabel
set grid xtics ytics mytics
if (logy) { set logscale y 10 } else { set yrange [0:*] }
set format y '%.0s%c'
if (logy) { set format y '%g' }
plot for [i=2:ncols] datafile using 1:i with linespoints lw 2 pt 7 ps 1.2 title columnheader(i)
