//! A client for the Linux kernel's IPVS load balancer, speaking its generic
//! netlink family (`IPVS`) directly.
