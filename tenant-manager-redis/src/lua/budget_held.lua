-- Returns the slots of all live holders.
return total()
